"""Trains a reward model's match head anew on a frozen ImageNet network's frame features (match_source "imagenet"),
every other weight as trained: each frame of the successful trajectories is encoded once and cached, so the stage
costs the encoding and a few minutes of small steps (docs/rewardmodel.md, "A pretrained network for the match head")."""

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from rewardmodel import losses, paraphrases
from rewardmodel.backbones import summarise
from rewardmodel.errors import RewardModelError
from rewardmodel.imagenet import GRIDS
from rewardmodel.model import CurateRewardModel
from rewardmodel.pairs import chosen_segment, reworded, spread
from rewardmodel.records import Trajectory
from rewardmodel.train import cosine_schedule


@dataclass(frozen=True)
class MatchConfig:
    """`curate rm match`: optimisation settings."""

    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 1
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    ends: bool = True  # the head reads each trajectory's first and last frame only (the model's match_ends)
    with_trained: bool = False  # keep the trained match head and average the two (the model's match_with_trained)
    grey: bool = False  # the frozen network sees grey frames (the model's match_grey)
    grid: int = 1  # its last map pooled over a grid x grid grid (the model's match_grid)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise RewardModelError(f"steps must be at least 1 and batch size at least 2 (the loss compares rows), got steps={self.steps} batch_size={self.batch_size}")
        if self.grid not in GRIDS:
            raise RewardModelError(f"grid must be one of {GRIDS} (the frozen network's last map is 4x4), got {self.grid}")
        if not 0 < self.lr < 1:
            raise RewardModelError(f"learning rate must be in (0, 1), got {self.lr}")


@dataclass(frozen=True)
class CachedTrajectory:
    """One successful trajectory's frames as the match head reads them: (N, H + W) float16, the progress CNN's
    features beside the frozen ImageNet network's (W: 1280 per grid cell)."""

    instruction: str
    first_success: int
    features: Tensor


def with_imagenet_match(model: CurateRewardModel, seed: int = 0, ends: bool = True, with_trained: bool = False, grey: bool = False, grid: int = 1) -> CurateRewardModel:
    """A copy of `model` with a new, untrained match head on match_source "imagenet" (its initial weights drawn
    from `seed`), reading the first and last frame of each trajectory with `ends` or every frame without; with
    `with_trained`, `model`'s own match head (or the trained head an earlier ImageNet head kept) is kept beside it
    and the two are averaged; `grey` and `grid` set what the frozen network sees and how its map is pooled. Every
    other weight the same."""
    if model.members is not None:
        raise RewardModelError("an ensemble's members each need their own match head: give one trained checkpoint (`curate rm train`), then join")
    if model.config.backbone != "compact":
        raise RewardModelError(f"the ImageNet match head reads the compact backbone's frame features; this checkpoint's backbone is {model.config.backbone!r}")
    source = model.state_dict()
    trained = {k: v for k, v in source.items() if k.startswith("trained_match.")}  # kept beside an earlier ImageNet head
    if with_trained and not trained:
        if model.match is None or model.config.match_source != "shared":
            raise RewardModelError(f"--with-trained-head keeps a match head trained on the shared CNN; this checkpoint has {'none' if model.match is None else 'one on match_source ' + repr(model.config.match_source)}")
        trained = {"trained_" + k: v for k, v in source.items() if k.startswith("match.")}
    config = replace(model.config, match_source="imagenet", match_weight=model.config.match_weight or 1.0, match_ends=ends, match_with_trained=with_trained, match_grey=grey, match_grid=grid)
    torch.manual_seed(seed)
    new = CurateRewardModel(config)
    kept = ("match.", "backbone.match_frames.")  # new: the head and projection drawn from the seed, the network the wheel's
    state = {k: v for k, v in source.items() if not k.startswith((*kept, "trained_match."))}
    if with_trained:
        state |= trained
    missing, unexpected = new.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(kept) for k in missing), (missing, unexpected)
    return new.eval()


@torch.inference_mode()
def cache_features(model: CurateRewardModel, trajectories: list[Trajectory], on_trajectory: Callable[[], None] | None = None) -> list[CachedTrajectory]:
    """Every frame of each successful trajectory encoded once (the network as `ImageNetFrames.features` runs it)."""
    frames = model.backbone.match_frames
    cached = []
    for trajectory in trajectories:
        if trajectory.quality == "successful" and len(trajectory.frames) >= 2:
            x = model.prepare(torch.from_numpy(trajectory.frames).unsqueeze(0))[0]
            parts = [torch.cat([model.backbone.frames(x[s : s + 64]), frames.features(x[s : s + 64])], -1) for s in range(0, len(x), 64)]
            cached.append(CachedTrajectory(trajectory.instruction, int(trajectory.first_success), torch.cat(parts).half()))
        if on_trajectory is not None:
            on_trajectory()
    if len({c.instruction for c in cached}) < 2:
        raise RewardModelError(f"the match head learns to tell tasks apart, and these episodes hold successful runs of {len({c.instruction for c in cached})} task; give successes of at least 2 tasks")
    return cached


def train_match(model: CurateRewardModel, cached: list[CachedTrajectory], config: MatchConfig, on_log: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Trains `model`'s match head and ImageNet projection in place: each step, `batch_size` cached trajectories, each
    a random segment that reaches its first success (as `curate rm train` draws chosen trajectories), every one
    against every row's instruction (a training paraphrase half the time) with the sigmoid loss; returns the log."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    project, h = model.backbone.match_frames.project, model.backbone.hidden_size
    params = [*model.match.parameters(), *project.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = cosine_schedule(optimizer, max(1, config.steps // 20), config.steps)
    num_frames, ends = model.config.num_frames, model.config.match_ends
    model.train()
    history, started = [], time.perf_counter()
    for step in range(1, config.steps + 1):
        videos, instructions, tasks = [], [], []
        for row in rng.integers(0, len(cached), config.batch_size):
            item = cached[row]
            frames = item.features[spread(*chosen_segment(rng, item.first_success, len(item.features)), num_frames)].float()
            if ends:  # what the head reads at scoring (CompactBackbone.forward)
                frames = frames[[0, -1]]
            videos.append(summarise(torch.cat([frames[:, :h], project(frames[:, h:])], -1).unsqueeze(0))[0])
            instructions.append(reworded(rng, item.instruction, paraphrases.TRAIN))
            tasks.append(item.instruction)
        logits = model.match(torch.stack(videos), model._text(instructions))
        loss = losses.match_loss(logits, torch.tensor([[a == b for b in tasks] for a in tasks]))
        if not torch.isfinite(loss):
            raise RewardModelError(f"the match loss became {loss.item()} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        logs = {"step": float(step), "match": loss.item(), "lr": schedule.get_last_lr()[0], "samples_per_s": step * config.batch_size / (time.perf_counter() - started)}
        history.append(logs)
        if on_log is not None:
            on_log(step, logs)
    model.eval()
    return history
