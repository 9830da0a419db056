"""How much do the frozen ImageNet network's features tell the train tasks apart on new episodes? A linear probe:
the network's features of each successful trajectory's first and last frame (summarised as the match head reads
them: their mean and last minus first) from the training sets, a 34-way linear classifier fitted on them, and its
accuracy on the ID sets' successes. Options: pool the network's last map over a 2x2 grid instead of the whole map
(does layout carry what the pooled features lose?), and make the frames grey or white-balanced first (grey world:
each channel divided by its mean; is colour what fails to carry over?). docs/rewardmodel.md has the runs.

    python benchmarks/feature_probe.py --frames plain --frames grey --frames grey-world --grid 1 --grid 2
"""

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from curate.rm_data import load_trajectories
from rewardmodel.backbones import summarise
from rewardmodel.imagenet import IMAGENET_SIZE, EfficientNetLite0
from rewardmodel.images import greyscale, resize_square

FRAMES = ("plain", "grey", "grey-world")


def recoloured(x: Tensor, kind: str) -> Tensor:
    """(N, 3, S, S) in [0, 1], as they are, grey (luma), or white-balanced by the grey-world rule."""
    if kind == "grey":
        return greyscale(x)
    if kind == "grey-world":
        return (x / x.mean((2, 3), keepdim=True).clamp(min=1e-3) * x.mean((1, 2, 3), keepdim=True)).clamp(0, 1)
    return x


def ends(network: EfficientNetLite0, paths: list[Path], kind: str) -> tuple[Tensor, list[str]]:
    """Per successful trajectory, the last maps of its first and last frame (T, 2, 1280, s, s), and its task."""
    trajectories = [t for p in paths for t in load_trajectories(p, 64, None, frame_stride=1) if t.quality == "successful" and len(t.frames) >= 2]
    frames = torch.from_numpy(np.stack([t.frames[[0, -1]] for t in trajectories])).flatten(0, 1).permute(0, 3, 1, 2)
    x = recoloured(resize_square(frames.float() / 255, IMAGENET_SIZE), kind)
    maps = torch.cat([network.last_map(x[s : s + 64]) for s in range(0, len(x), 64)])
    return maps.view(len(trajectories), 2, *maps.shape[1:]), [t.instruction for t in trajectories]


def summary(maps: Tensor, grid: int) -> Tensor:
    """(T, 2, C, s, s) -> (T, 2 * C * grid^2): the mean of the two frames' pooled features and their difference."""
    return summarise(nn.functional.adaptive_avg_pool2d(maps.flatten(0, 1), grid).reshape(maps.shape[0], 2, -1))


def probe(train: Tensor, train_y: Tensor, test: Tensor, test_y: Tensor, classes: int, steps: int = 1500) -> tuple[float, float, float]:
    """A linear classifier on standardised features (AdamW, weight decay 0.01, input dropout 0.2): its top-1 and top-3
    accuracy on the test rows and top-1 on the training rows."""
    mean, std = train.mean(0), train.std(0) + 1e-4
    train, test = (train - mean) / std, (test - mean) / std
    torch.manual_seed(0)
    classifier = nn.Linear(train.shape[1], classes)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(steps):
        rows = torch.randint(0, len(train), (256,))
        loss = nn.functional.cross_entropy(classifier(nn.functional.dropout(train[rows], 0.2)), train_y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        logits = classifier(test)
        top1 = (logits.argmax(1) == test_y).float().mean()
        top3 = (logits.topk(3, 1).indices == test_y[:, None]).any(1).float().mean()
        fit = (classifier(train).argmax(1) == train_y).float().mean()
    return float(top1), float(top3), float(fit)


def main(
    train: Annotated[list[Path] | None, typer.Option(help="Training sets (default: the two expert sets `curate rm match` trains on).")] = None,
    test: Annotated[list[Path] | None, typer.Option(help="Evaluation sets of the same tasks (default: the two ID sets).")] = None,
    frames: Annotated[list[str] | None, typer.Option(help=f"How frames are coloured first: {', '.join(FRAMES)} (repeatable).")] = None,
    grid: Annotated[list[int] | None, typer.Option(help="Pool the last map over a GRID x GRID grid (repeatable; 1: the pooled features the match head reads).")] = None,
) -> None:
    kinds = frames or ["plain"]
    if set(kinds) - set(FRAMES):
        raise typer.BadParameter(f"unknown --frames in {kinds}; valid: {', '.join(FRAMES)}", param_hint="--frames")
    network = EfficientNetLite0()
    table = Table(title="linear probe: the network's features of first and last frames -> task")
    for column in ("frames", "grid", "dims", "train top-1", "test top-1", "test top-3", "seconds"):
        table.add_column(column, justify="left" if column == "frames" else "right")
    for kind in kinds:
        started = time.perf_counter()
        train_maps, train_tasks = ends(network, train or [Path("data/rm_train_expert3"), Path("data/rm_train_expert3b")], kind)
        test_maps, test_tasks = ends(network, test or [Path("data/rm_eval_id"), Path("data/rm_eval_id2")], kind)
        tasks = {t: i for i, t in enumerate(sorted(set(train_tasks)))}
        if set(test_tasks) - set(tasks):
            raise typer.BadParameter(f"the test sets hold tasks the training sets do not: {sorted(set(test_tasks) - set(tasks))}", param_hint="--test")
        train_y, test_y = torch.tensor([tasks[t] for t in train_tasks]), torch.tensor([tasks[t] for t in test_tasks])
        for g in grid or [1]:
            x_train, x_test = summary(train_maps, g), summary(test_maps, g)
            top1, top3, fit = probe(x_train, train_y, x_test, test_y, len(tasks))
            table.add_row(kind, str(g), str(x_train.shape[1]), f"{fit:.3f}", f"{top1:.3f}", f"{top3:.3f}", f"{time.perf_counter() - started:.0f}")
        Console().print(f"{kind}: {len(train_tasks)} training and {len(test_tasks)} test trajectories")
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
