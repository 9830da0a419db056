"""What limits the match head? Its instruction AUC (rewardmodel/evaluate.py) on one dataset's successes, as they are and
with every trajectory's colours shifted, mirrored, reversed in time, reduced to its first frame or its colour
channels permuted; and, given several models (seeds of one recipe), with their match probabilities averaged. Run it
on the training set and on the ID set: if shifted colours or a mirror image cost the training episodes much AUC, the
head knows its episodes by those rather than by their tasks; if averaging seeds lifts the ID AUC much, its error is
seed variance rather than what its features can tell apart; what reversing the frames or keeping only the first
costs says how much it reads what changed rather than the scene (docs/rewardmodel.md has the runs).

    python benchmarks/match_diagnostics.py --model data/rm_L8k_s0 --dataset data/rm_train_rand --limit 400
    python benchmarks/match_diagnostics.py --model data/rm_L8k_s0 --model data/rm_L8k_s1 --model data/rm_L8k_s2
"""

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from curate.rm_data import load_trajectories
from rewardmodel.backbones import BackboneOutput
from rewardmodel.evaluate import Selector, instruction_auc
from rewardmodel.model import CurateRewardModel, load_model


def colour_shift(seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Per trajectory, every colour channel scaled about mid-grey by 0.6-1.4: twice the training jitter's range."""
    rng = np.random.default_rng(seed)
    return lambda frames: ((frames.astype(np.float32) - 128) * rng.uniform(0.6, 1.4, 3) + 128).clip(0, 255).astype(np.uint8)


VARIANTS: dict[str, Callable[[], Callable[[np.ndarray], np.ndarray]]] = {
    "as they are": lambda: lambda frames: frames,
    "colours shifted (x0.6-1.4 per channel)": lambda: colour_shift(0),
    "mirrored": lambda: lambda frames: frames[:, :, ::-1].copy(),
    "reversed in time": lambda: lambda frames: frames[::-1].copy(),
    "first frame only": lambda: lambda frames: np.repeat(frames[:1], len(frames), 0),
    "colour channels permuted (RGB -> BRG)": lambda: lambda frames: frames[..., [2, 0, 1]].copy(),
}


def match_selector(model: CurateRewardModel) -> Selector:
    """Match probability; each trajectory's instruction-free summaries are computed once, however many instructions."""
    summaries: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @torch.inference_mode()
    def select(frames: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        keys = [hashlib.blake2b(f.numpy().tobytes(), digest_size=16).hexdigest() for f in frames]
        missing = [r for r, k in enumerate(keys) if k not in summaries]
        if missing:
            out = model.backbone(model.prepare(frames[missing]), [instructions[r] for r in missing])
            trained = [None] * len(missing) if out.trained_a is None else out.trained_a
            summaries.update({keys[r]: (v, t) for r, v, t in zip(missing, out.video_a, trained, strict=True)})
        video, trained = zip(*(summaries[k] for k in keys), strict=True)
        out = BackboneOutput(None, None, None, torch.stack(video), trained_a=None if trained[0] is None else torch.stack(trained))
        return model.match_probability(out, model._text(instructions)).diagonal()

    return select


def main(
    model: Annotated[list[Path], typer.Option(help="A reward model folder with a match head (repeat for seeds).")],
    dataset: Annotated[Path, typer.Option(help="A dataset with next.success (the training or the ID set).")] = Path("data/rm_eval_id"),
    limit: Annotated[int, typer.Option(help="At most this many successful trajectories, drawn at random (0: all).")] = 0,
    frames: Annotated[int, typer.Option(help="Frames per episode.")] = 8,
) -> None:
    models = [load_model(m) for m in model]
    if any(m.match is None for m in models):
        raise typer.BadParameter("every --model needs a match head (trained with --match-weight > 0)", param_hint="--model")
    successes = [t for t in load_trajectories(dataset, models[0].config.image_size, None, frame_stride=1) if t.quality == "successful"]
    if limit:
        successes = [successes[i] for i in sorted(np.random.default_rng(0).permutation(len(successes))[:limit])]
    table = Table(title=f"match head instruction AUC on {dataset} ({len(successes)} successful trajectories)")
    table.add_column("frames")
    names = [m.name for m in model] + (["seeds averaged"] if len(models) > 1 else [])
    for name in names:
        table.add_column(name, justify="right")
    for variant, make in VARIANTS.items():
        change = make()
        changed = [replace(t, frames=change(t.frames)) for t in successes]
        singles = [match_selector(m) for m in models]  # the average reuses their cached summaries
        aucs = [instruction_auc(select, changed, frames) for select in singles]
        if len(models) > 1:
            aucs.append(instruction_auc(lambda f, i: sum(select(f, i) for select in singles) / len(singles), changed, frames))
        table.add_row(variant, *(f"{a:.3f}" for a in aucs))
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
