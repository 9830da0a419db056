"""Which rule should order episodes under an instruction? Scores one model's outputs on an evaluation set once and
ranks by several combinations of final progress, mean progress, success and match, with the benchmark's own
instruction AUC and top-5 precision (rewardmodel/evaluate.py), and what the wrong picks were: failed runs of the
task, or runs of another task. Choose on the ID set only (docs/design.md).

    python benchmarks/selection_rules.py --model data/rm_L8k_s0 --dataset data/rm_eval_id
"""

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from curate.rm_data import load_trajectories
from rewardmodel.evaluate import Selector, instruction_auc, top_k_breakdown
from rewardmodel.model import load_model

# (final progress, mean progress, highest success, match) per trajectory -> selection score; the first is curate's
RULES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "final progress x match (curate rank)": lambda p, mp, s, m: p * m,
    "match alone": lambda p, mp, s, m: m,
    "final progress alone": lambda p, mp, s, m: p,
    "success x match": lambda p, mp, s, m: s * m,
    "final progress x match^2": lambda p, mp, s, m: p * m**2,
    "min(final progress, match)": lambda p, mp, s, m: np.minimum(p, m),
    "mean progress x match": lambda p, mp, s, m: mp * m,
    "final progress x success x match": lambda p, mp, s, m: p * s * m,
}


def cached_outputs(model) -> Callable[[torch.Tensor, list[str]], np.ndarray]:
    """The model's (final progress, mean progress, highest success, match) per row, computed once per (frames,
    instruction) however many rules ask."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    @torch.inference_mode()
    def outputs(frames: torch.Tensor, instructions: list[str]) -> np.ndarray:
        keys = [(hashlib.blake2b(f.numpy().tobytes(), digest_size=16).hexdigest(), i) for f, i in zip(frames, instructions, strict=True)]
        missing = [r for r, k in enumerate(keys) if k not in cache]
        if missing:
            progress, success, match = model.predict_all(frames[missing], [instructions[r] for r in missing])
            match = torch.ones(len(missing)) if match is None else match
            values = torch.stack([progress[:, -1], progress.mean(1), success.max(1).values, match], 1).numpy()
            cache.update({keys[r]: v for r, v in zip(missing, values, strict=True)})
        return np.stack([cache[k] for k in keys])

    return outputs


def main(
    model: Annotated[Path, typer.Option(help="A reward model folder.")],
    dataset: Annotated[Path, typer.Option(help="An evaluation set with next.success (the ID set: choose on it only).")] = Path("data/rm_eval_id"),
    frames: Annotated[int, typer.Option(help="Frames per episode.")] = 8,
) -> None:
    reward_model = load_model(model)
    trajectories = load_trajectories(dataset, reward_model.config.image_size, None, frame_stride=1)
    outputs = cached_outputs(reward_model)
    table = Table(title=f"selection rules, {model} on {dataset} ({len(trajectories)} episodes)")
    for column in ("rule", "instruction AUC", "top-5 precision", "top-5 failed runs", "top-5 other tasks"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for name, rule in RULES.items():
        selector: Selector = lambda f, i, rule=rule: torch.from_numpy(rule(*outputs(f, i).T))  # noqa: E731
        picks = top_k_breakdown(selector, trajectories, frames, 5)
        table.add_row(name, f"{instruction_auc(selector, trajectories, frames):.3f}", *(f"{picks[kind]:.3f}" for kind in ("right", "failed", "other task")))
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
