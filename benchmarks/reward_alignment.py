"""Reward alignment benchmark (issue: reward model targets): the shipped model, the progress-only ablation, a
SigLIP frame-instruction similarity baseline and a random scorer, side by side on freshly generated data for the
three splits of DESIGN.md.

    python benchmarks/reward_alignment.py --model rewardmodel/checkpoints/default --ablation data/rm_progress_only \
        --siglip data/rm_siglip --id data/rm_eval_id --heldout data/rm_eval_heldout --json docs/reward_alignment.json
"""

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from curate.retrieval import Siglip, open_siglip
from curate.reward_runs import open_model
from curate.rm_data import load_trajectories
from rewardmodel.evaluate import instruction_auc, preference_accuracy, score_trajectories
from rewardmodel.metrics import alignment_metrics

COLUMNS = ("voc", "kendall_tau_a", "succ_fail_gap", "failure_f1", "preference_accuracy", "instruction_auc")


def random_scorer(seed: int):
    generator = torch.Generator().manual_seed(seed)

    def score(frames: torch.Tensor, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        shape = frames.shape[:2]
        return torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)

    return score


def siglip_scorer(siglip: Siglip):
    """No training on progress: each frame's SigLIP match probability with the instruction, sigmoid(scale * cos +
    bias) with the model's own scale and bias, is both its progress and its success probability."""
    scale, bias = siglip.model.logit_scale.exp().item(), siglip.model.logit_bias.item()

    def score(frames: torch.Tensor, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = frames.shape[:2]
        images = torch.from_numpy(siglip.embed_images(frames.flatten(0, 1))).view(b, t, -1)
        texts = torch.from_numpy(siglip.embed_texts(instructions))
        match = torch.sigmoid(scale * torch.einsum("btd,bd->bt", images, texts) + bias)
        return match, match

    return score


def main(
    model: Annotated[Path, typer.Option(help="The model to benchmark (the shipped default).")] = Path("rewardmodel/checkpoints/default"),
    ablation: Annotated[Path | None, typer.Option(help="The progress-only ablation, trained with the same command and --ablation progress-only.")] = None,
    id_dataset: Annotated[Path, typer.Option("--id", help="Train tasks, new seeds, with corner2 and an unseen camera.")] = Path("data/rm_eval_id"),
    heldout: Annotated[Path, typer.Option(help="Held-out tasks, new seeds.")] = Path("data/rm_eval_heldout"),
    siglip: Annotated[str | None, typer.Option(help="A SigLIP folder or hub id for the similarity baseline (e.g. one from curate retrieve train).")] = None,
    unseen_camera: Annotated[str, typer.Option(help="The OOD-view camera key.")] = "unseen",
    frames: Annotated[int, typer.Option(help="Frames per episode.")] = 8,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
) -> None:
    console = Console()
    models = {"shipped": open_model(model)}
    if ablation is not None:
        models["progress-only"] = open_model(ablation)
    similarity = open_siglip(siglip) if siglip is not None else None
    splits = {"ID": (id_dataset, "corner2"), "OOD-view": (id_dataset, unseen_camera), "OOD-task": (heldout, "corner2")}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for split, (dataset, camera) in splits.items():
        size = next(iter(models.values())).config.image_size
        trajectories = load_trajectories(dataset, size, [camera], frame_stride=1)
        results[split] = {}
        for name, reward_model in models.items():
            metrics = alignment_metrics(score_trajectories(reward_model.predict, trajectories, frames))
            metrics["preference_accuracy"] = preference_accuracy(reward_model, trajectories, frames)
            metrics["instruction_auc"] = instruction_auc(reward_model.predict, trajectories, frames)
            results[split][name] = metrics
        if siglip is not None:
            scorer = siglip_scorer(similarity)
            results[split]["siglip"] = alignment_metrics(score_trajectories(scorer, trajectories, frames)) | {"preference_accuracy": None, "instruction_auc": instruction_auc(scorer, trajectories, frames)}  # no preference head
        results[split]["random"] = alignment_metrics(score_trajectories(random_scorer(0), trajectories, frames)) | {"preference_accuracy": 0.5, "instruction_auc": instruction_auc(random_scorer(1), trajectories, frames)}
    table = Table(title=f"reward alignment, {frames} frames per episode")
    for column in ("split", "scorer", *COLUMNS, "episodes"):
        table.add_column(column, justify="left" if column in ("split", "scorer") else "right")
    for split, by_model in results.items():
        for name, metrics in by_model.items():
            table.add_row(split, name, *("-" if metrics[c] is None else f"{metrics[c]:.3f}" for c in COLUMNS), str(int(metrics["episodes"])))
    console.print(table)
    if "progress-only" in models:
        for split in ("ID", "OOD-view"):
            ratio = results[split]["shipped"]["kendall_tau_a"] / max(results[split]["progress-only"]["kendall_tau_a"], 1e-9)
            console.print(f"{split}: Kendall tau-a shipped / progress-only = {ratio:.2f}")
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    typer.run(main)
