"""Resuming an interrupted `curate rm train`: every `every` steps rank 0 writes the training state (weights, optimiser,
schedule, history and every rank's random generators) to one file beside the output. A rerun with the same settings
continues from it and ends with the weights an uninterrupted run ends with; other settings start over."""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from rewardmodel import distributed
from rewardmodel.records import Trajectory


@dataclass(frozen=True)
class Resume:
    path: Path  # the state file
    settings: str  # what makes two runs the same run (JSON): data, model and training settings, world size
    every: int = 500  # steps between states


def digest(trajectories: list[Trajectory]) -> str:
    """SHA-256 over every trajectory's instruction, success labels and first and last frames: data regenerated at the
    same path with another seed is another run's data."""
    hashed = hashlib.sha256()
    for t in trajectories:
        for part in (t.instruction.encode(), t.success.tobytes(), t.frames[0].tobytes(), t.frames[-1].tobytes()):
            hashed.update(part)
    return f"{len(trajectories)} trajectories, sha256 {hashed.hexdigest()}"


def random_state(generator: torch.Generator, sampler_rng: np.random.Generator) -> dict[str, Any]:
    """This process's generators that training draws from: pairs, augmentation, dropout (and CUDA's, if any)."""
    state = {"pairs": sampler_rng.bit_generator.state, "augment": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_random_state(state: dict[str, Any], generator: torch.Generator, sampler_rng: np.random.Generator) -> None:
    sampler_rng.bit_generator.state = state["pairs"]
    generator.set_state(state["augment"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def save(resume: Resume, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Any, history: list[dict[str, float]], random: dict[str, Any]) -> None:
    """Every rank calls this at the same step (their generators are gathered); rank 0 writes, atomically."""
    randoms = [random]
    if distributed.world_size() > 1:
        randoms = [None] * distributed.world_size()
        dist.all_gather_object(randoms, random)
    if distributed.rank() > 0:
        return
    state = {"settings": resume.settings, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "history": history, "random": randoms}
    partial = _partial(resume)
    torch.save(state, partial)
    partial.replace(resume.path)


def load(resume: Resume) -> dict[str, Any] | None:
    """The saved state of this run, or None when there is none or it is another run's (other settings)."""
    try:
        state = torch.load(resume.path, map_location="cpu", weights_only=True)
    except Exception:  # none, or unreadable (not one of ours, cut short by a full disk): the run starts over and replaces it
        return None
    if not isinstance(state, dict) or state.get("settings") != resume.settings:
        return None
    return state


def discard(resume: Resume) -> None:
    """Once the checkpoint is written: the state and any half-written one go."""
    if distributed.rank() == 0:
        resume.path.unlink(missing_ok=True)
        _partial(resume).unlink(missing_ok=True)


def _partial(resume: Resume) -> Path:
    return resume.path.with_name(resume.path.name + ".partial")
