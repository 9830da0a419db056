"""The demo's question on a larger pool recorded the way `make demo` records (corner2 at 96 px, a view and size no
training set has, fixed scene): do the demo filter's rank and match bar (`curate filter --instruction "Open a drawer"
--top-k 4 --min-match 0.85`) export only successful drawer openings, and how far apart does each model put drawer and
door openings? The demo's success bar (`--min-success 0.5`) is left out: this pool asks whether match alone tells
drawer openings from door openings.

    curate datagen metaworld --tasks drawer-open,door-open,drawer-close,door-close,window-open,button-press,reach \
        --episodes-per-task 12 --stride 4 --cameras corner2 --seed 11 --out data/demo_view_check
    python benchmarks/demo_view.py --model rewardmodel/checkpoints/default --model data/rm_s1

Per model: what the demo's filter would export from the pool (successful drawer openings / exported); how many
successful door openings reach the 0.85 match bar; the ROC AUC of the selection score (final progress x match)
between successful drawer openings and successful door openings; and over the pool's tasks the benchmark's
instruction AUC and top-5 precision (`rewardmodel.evaluate`). A gate for candidates, not a reported test split.
"""

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from curate.rm_data import load_trajectories
from rewardmodel.evaluate import instruction_auc, select_scores, top_k_precision
from rewardmodel.metrics import roc_auc
from rewardmodel.model import load_model
from reward_alignment import model_selector  # curate rank's rule as the benchmarks apply it (run from benchmarks/)

DRAWER, DOOR = "Open a drawer", "Open a door with a revolving joint"


def main(
    model: Annotated[list[str], typer.Option(help="Checkpoint folder (repeatable).")],
    dataset: Annotated[Path, typer.Option(help="The pool, recorded like the demo (see above).")] = Path("data/demo_view_check"),
    top_k: Annotated[int, typer.Option(help="The demo's --top-k.")] = 4,
    min_match: Annotated[float, typer.Option(help="The demo's --min-match.")] = 0.85,
    frames: Annotated[int, typer.Option(help="Frames per episode.")] = 8,
) -> None:
    torch.set_num_threads(1)
    table = Table(title=f"{dataset}: the demo's filter (--instruction {DRAWER!r} --top-k {top_k} --min-match {min_match}) on a larger pool")
    for column in ("model", "export: drawer successes / kept", "door successes >= bar", "drawer-vs-door AUC", "instruction AUC", "top-5 precision"):
        table.add_column(column, justify="left" if column == "model" else "right")
    trajectories = None
    for path in model:
        reward_model = load_model(path)
        if reward_model.config.match_weight <= 0:
            raise typer.BadParameter(f"{path} has no match head, which the demo's --min-match needs", param_hint="--model")
        if trajectories is None:
            trajectories = load_trajectories(dataset, reward_model.config.image_size, None, frame_stride=1)
            tasks = np.array([t.instruction for t in trajectories])
            succeeded = np.array([t.quality == "successful" for t in trajectories])
            if not (succeeded & (tasks == DRAWER)).any() or not (succeeded & (tasks == DOOR)).any():
                raise typer.BadParameter(f"{dataset} needs successful drawer and door openings; generate it as above", param_hint="--dataset")
        select = model_selector(reward_model, sorted(set(tasks)))  # curate rank's rule: final progress x match
        with torch.inference_mode():
            score = select_scores(select, trajectories, DRAWER, frames)
            match = select_scores(lambda clips, words: reward_model.predict_all(clips, words)[2], trajectories, DRAWER, frames)
            auc, precision = instruction_auc(select, trajectories, frames), top_k_precision(select, trajectories, frames, 5)
        kept = [i for i in np.argsort(-score, kind="stable")[:top_k] if match[i] >= min_match]
        good = succeeded & (tasks == DRAWER)
        door = succeeded & (tasks == DOOR)
        table.add_row(path, f"{int(good[kept].sum())} / {len(kept)}", f"{int((match[door] >= min_match).sum())} / {int(door.sum())}", f"{roc_auc(score[good], score[door]):.3f}", f"{auc:.3f}", f"{precision:.3f}")
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
