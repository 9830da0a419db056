"""The `curate` command line: parse options, build a config, call the library, render with rich."""

import os

os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder prints its whole configuration per video unless told not to
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # per-episode "Map" bars drown our own progress bar

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from curate.errors import CurateError
from curate.records import QUALITIES
from policies.recipes import DEFAULT_RECIPES

app = typer.Typer(help="Find the good episodes in robot play data.", no_args_is_help=True, add_completion=False)
datagen_app = typer.Typer(help="Generate play datasets in simulation.", no_args_is_help=True)
app.add_typer(datagen_app, name="datagen")
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def friendly(command: F) -> F:
    """Turn library errors into one clear line and exit code 2, and an interrupt into exit code 130."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CurateError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: nothing half-written was left behind; run the command again", soft_wrap=True)
            raise typer.Exit(130) from None

    return run  # type: ignore[return-value]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@datagen_app.command("metaworld")
@friendly
def datagen_metaworld(
    out: Annotated[Path, typer.Option(help="Folder for the new LeRobot dataset (must not exist, unless --overwrite).")],
    tasks: Annotated[str, typer.Option(help="Comma-separated MT50 tasks, or 'train' / 'heldout' (DESIGN.md's sets).")] = "drawer-open,pick-place",
    episodes_per_task: Annotated[int, typer.Option(help="Episodes per task.")] = 6,
    recipes: Annotated[str, typer.Option(help="Comma-separated recipes, cycled over each task's episodes: expert, gaussian:SIGMA, random-actions:FRACTION, stall:STEP, other-task, uniform.")] = ",".join(DEFAULT_RECIPES),
    cameras: Annotated[str, typer.Option(help="Comma-separated cameras: MuJoCo names (corner2, topview, ...) or free cameras NAME:AZIMUTH:ELEVATION:DISTANCE.")] = "corner2,topview",
    size: Annotated[int, typer.Option(help="Image size in pixels (square).")] = 96,
    steps: Annotated[int, typer.Option(help="Simulation steps per episode.")] = 200,
    stride: Annotated[int, typer.Option(help="Keep and render every stride-th step (fps = 80 / stride).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same dataset.")] = 0,
    workers: Annotated[int, typer.Option(help="Rollout worker processes.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Roll out MT50 tasks with scripted experts and degraded recipes into a LeRobot v3 play dataset."""
    from curate.datagen import DatagenConfig, generate, quality_counts

    config = DatagenConfig(
        out=out, tasks=_split(tasks), episodes_per_task=episodes_per_task, recipes=_split(recipes),
        cameras=_split(cameras), size=size, steps=steps, stride=stride, seed=seed, workers=workers, overwrite=overwrite,
    )
    total = len(config.task_list) * config.episodes_per_task
    with progress_bar() as progress:
        bar = progress.add_task("rolling out", total=total, rate="")

        def advance(rollout) -> None:
            progress.advance(bar)
            done = progress.tasks[bar].completed
            elapsed = progress.tasks[bar].elapsed or 1e-9
            progress.update(bar, rate=f"{60 * done / elapsed:.1f} episodes/min")

        manifest = generate(config, on_episode=advance)
    table = Table(title=f"{total} episodes written to {config.out.resolve()}")
    table.add_column("task")
    for quality in QUALITIES:
        table.add_column(quality, justify="right")
    for task, counts in quality_counts(manifest).items():
        table.add_row(task, *(str(counts[q]) for q in QUALITIES))
    console.print(table)


@app.command("info")
@friendly
def info(
    dataset: Annotated[str, typer.Argument(help="A LeRobot v3 dataset root (or hub id where the network allows).")],
) -> None:
    """List a dataset's episodes: length, task, cameras and, where labelled, quality from next.success."""
    from curate import lerobot_io

    ds = lerobot_io.open_dataset(dataset)
    episodes = lerobot_io.list_episodes(ds)
    table = Table(title=f"{lerobot_io.dataset_root(ds)}: {len(episodes)} episodes at {ds.fps} fps; cameras: {', '.join(lerobot_io.camera_keys(ds))}")
    for column in ("episode", "frames", "task", "quality", "first success"):
        table.add_column(column)
    for episode in episodes:
        first = "" if episode.success is None or not episode.success.any() else str(int(episode.success.argmax()))
        table.add_row(str(episode.episode_index), str(episode.length), episode.task, episode.quality or "", first)
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
