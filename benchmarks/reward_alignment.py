"""Reward alignment and selection benchmark (docs/design.md's protocol): each recipe's models (one per training
seed), a SigLIP frame-instruction similarity baseline and a random scorer, side by side on four splits; means and
spreads over seeds.

    python benchmarks/reward_alignment.py --recipe shipped=data/rm_s0,data/rm_s1,data/rm_s2 \
        --recipe progress-only=data/rm_po_s0,data/rm_po_s1,data/rm_po_s2 --siglip data/rm_siglip \
        --id data/rm_eval_id --view data/rm_eval_view --heldout data/rm_eval_heldout --json docs/reward_alignment.json

Splits: ID (train tasks, new seeds, the training camera distribution), OOD-view (train tasks from views never
trained on), OOD-task (held-out tasks), paraphrase (the ID episodes under held-out wordings of their instructions).
Recipes are chosen on ID alone (`--splits ID`), so the other splits stay tests, not targets.
"""

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from curate.retrieval import open_siglip
from curate.rm_data import load_trajectories
from rewardmodel.evaluate import Selector, final_progress_selector, instruction_auc, preference_accuracy, score_trajectories, top_k_breakdown
from rewardmodel.metrics import alignment_metrics
from rewardmodel.model import load_model
from rewardmodel.paraphrases import HELDOUT
from rewardmodel.siglip import Siglip

SPLITS = {"ID": ("ID", None), "OOD-view": ("OOD-view", None), "OOD-task": ("OOD-task", None), "paraphrase": ("ID", HELDOUT)}  # split: (data, wordings)
COLUMNS = ("voc", "kendall_tau_a", "succ_fail_gap", "failure_f1", "preference_accuracy", "instruction_auc", "top5_precision")


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


def model_selector(model, vocabulary: list[str]) -> Selector:
    """curate rank's rule: final progress x match probability (final progress alone without a match head). Each
    trajectory is scored once under the whole vocabulary through `predict_grids`, its frames encoded once (as `curate
    score` does), not once per instruction: a match head on an ImageNet network would otherwise run it 34 times."""
    table: dict[str, dict[str, float]] = {}

    @torch.inference_mode()
    def select(frames: torch.Tensor, instructions: list[str]) -> torch.Tensor:
        out = []
        for row, instruction in zip(frames, instructions, strict=True):
            key = hashlib.blake2b(row.numpy().tobytes(), digest_size=16).hexdigest()
            if instruction not in table.setdefault(key, {}):
                words = [instruction, *(w for w in vocabulary if w not in table[key] and w != instruction)]
                progress, _, match = model.predict_grids(row, [np.arange(len(row))], words)
                table[key] |= dict(zip(words, (progress[:, -1] * (1.0 if match is None else match)).tolist(), strict=True))
            out.append(table[key][instruction])
        return torch.tensor(out)

    return select


def metrics_for(scorer, selector: Selector, trajectories: list, frames: int, phrasings: dict | None, model=None) -> dict[str, float]:
    scored = trajectories if phrasings is None else [replace(t, instruction=phrasings.get(t.instruction, (t.instruction,))[0]) for t in trajectories]
    metrics = alignment_metrics(score_trajectories(scorer, scored, frames))
    metrics["preference_accuracy"] = preference_accuracy(model, scored, frames) if model is not None else None
    metrics["instruction_auc"] = instruction_auc(selector, trajectories, frames, phrasings)
    picks = top_k_breakdown(selector, trajectories, frames, 5, phrasings)
    metrics["top5_precision"] = picks["right"]
    metrics["top5_failed"], metrics["top5_other_task"] = picks["failed"], picks["other task"]  # what the wrong picks were
    return metrics


def summary(per_seed: list[dict]) -> dict:
    """Per metric: mean, std (population, over seeds) and the seeds' values."""
    out = {}
    for key in per_seed[0]:
        values = [m[key] for m in per_seed]
        if any(v is None for v in values):
            out[key] = None
            continue
        out[key] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values)), "seeds": [float(v) for v in values]}
    return out


def main(
    recipe: Annotated[list[str], typer.Option(help="NAME=DIR[,DIR...]: a recipe's models, one per training seed (repeatable).")],
    id_dataset: Annotated[list[Path] | None, typer.Option("--id", help="Train tasks, new seeds, the training view distribution (repeatable: the sets are pooled; default data/rm_eval_id).")] = None,
    view: Annotated[Path, typer.Option(help="Train tasks from evaluation views, never trained on.")] = Path("data/rm_eval_view"),
    heldout: Annotated[Path, typer.Option(help="Held-out tasks, new seeds.")] = Path("data/rm_eval_heldout"),
    siglip: Annotated[str | None, typer.Option(help="A SigLIP folder or hub id for the similarity baseline (e.g. one from curate retrieve train).")] = None,
    frames: Annotated[int, typer.Option(help="Frames per episode.")] = 8,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results here.")] = None,
    splits: Annotated[str, typer.Option(help="Comma-separated splits to run; choose recipes on ID alone.")] = ",".join(SPLITS),
) -> None:
    console = Console()
    recipes = {name: [load_model(d) for d in dirs.split(",")] for name, dirs in (r.split("=", 1) for r in recipe)}
    size = next(iter(recipes.values()))[0].config.image_size
    similarity = open_siglip(siglip) if siglip is not None else None
    chosen = [s.strip() for s in splits.split(",") if s.strip()]
    if not chosen or set(chosen) - set(SPLITS):
        raise typer.BadParameter(f"unknown split in {splits!r}; valid: {', '.join(SPLITS)}", param_hint="--splits")
    sources = {"ID": id_dataset or [Path("data/rm_eval_id")], "OOD-view": [view], "OOD-task": [heldout]}
    data = {name: [t for path in paths for t in load_trajectories(path, size, None, frame_stride=1)] for name, paths in sources.items() if name in {SPLITS[s][0] for s in chosen}}
    results: dict[str, dict[str, dict]] = {}
    for split in chosen:
        source, phrasings = SPLITS[split]
        trajectories = data[source]
        results[split] = {}
        vocabulary = sorted({w for t in trajectories for w in ((phrasings or {}).get(t.instruction, ()) if phrasings is not None else (t.instruction,))})
        for name, models in recipes.items():
            per_seed = [metrics_for(m.predict, model_selector(m, vocabulary), trajectories, frames, phrasings, m) for m in models]
            results[split][name] = summary(per_seed)
        if similarity is not None:
            scorer = siglip_scorer(similarity)
            results[split]["siglip"] = summary([metrics_for(scorer, final_progress_selector(scorer), trajectories, frames, phrasings)])
        results[split]["random"] = summary([metrics_for(random_scorer(0), final_progress_selector(random_scorer(1)), trajectories, frames, phrasings)])
        results[split]["episodes"] = len(trajectories)
        console.print(f"{split}: done")
    table = Table(title=f"reward alignment and selection, {frames} frames per episode, mean ± std over training seeds")
    for column in ("split", "scorer", *COLUMNS):
        table.add_column(column, justify="left" if column in ("split", "scorer") else "right")
    for split, by_scorer in results.items():
        for name, metrics in by_scorer.items():
            if name == "episodes":
                continue
            cells = ["-" if metrics[c] is None else f"{metrics[c]['mean']:.3f}" + (f"±{metrics[c]['std']:.3f}" if len(metrics[c]["seeds"]) > 1 else "") for c in COLUMNS]
            table.add_row(f"{split} ({by_scorer['episodes']})", name, *cells)
    console.print(table)
    names = list(recipes)
    if "progress-only" in recipes and len(names) > 1:
        main_recipe = names[0]
        for split in [s for s in ("ID", "OOD-view") if s in results]:
            ratio = results[split][main_recipe]["kendall_tau_a"]["mean"] / max(results[split]["progress-only"]["kendall_tau_a"]["mean"], 1e-9)
            console.print(f"{split}: Kendall tau-a {main_recipe} / progress-only = {ratio:.2f}")
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    typer.run(main)
