"""Steady-state scoring speed: `curate score`'s own code (`scoring.prepare`, then `score_dataset`) timed in one
process, the model loaded and warmed up before the clock starts, into a fresh index each round. It prints each
round's episodes/s (each episode under all its instructions) and their median.

To compare two versions of the code side by side, run it alternately from each checkout (a `git worktree` of the
other commit, put first on the path):

    python benchmarks/score_speed.py --dataset data/rm_eval_id --instruction "Open a drawer" --rounds 3
    PYTHONPATH=/tmp/other python benchmarks/score_speed.py --dataset data/rm_eval_id --instruction "Open a drawer" --rounds 3
"""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import curate
from curate.scoring import ScoreConfig, prepare, score_dataset


def main(
    dataset: Annotated[str, typer.Option(help="A LeRobot dataset folder.")],
    model: Annotated[str, typer.Option(help="Reward model: `default` or a checkpoint folder.")] = "default",
    camera: Annotated[str | None, typer.Option(help="Camera key (default: the first).")] = None,
    instruction: Annotated[list[str] | None, typer.Option(help="Extra instructions to score every episode under (repeatable).")] = None,
    rounds: Annotated[int, typer.Option(help="Timed rounds, each into a fresh index.")] = 3,
) -> None:
    table = Table(title=f"score_dataset on {dataset} with {model} (code: {Path(curate.__file__).parent.parent})")
    for column in ("round", "load + warm-up s", "score s", "episodes", "rows", "episodes/s"):
        table.add_column(column, justify="right")
    rates = []
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(1, rounds + 1):
            started = time.perf_counter()
            job = prepare(ScoreConfig(dataset, index=Path(work) / f"round{round_}.duckdb", model=model, camera=camera, instructions=tuple(instruction or ())))
            loaded = time.perf_counter()
            summary = score_dataset(job)
            seconds = time.perf_counter() - loaded
            rates.append(len(job.todo) / seconds)
            table.add_row(str(round_), f"{loaded - started:.2f}", f"{seconds:.2f}", str(len(job.todo)), str(summary.scored), f"{rates[-1]:.1f}")
    table.add_row("median", "", "", "", "", f"{statistics.median(rates):.1f}")
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
