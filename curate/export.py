"""`curate filter`: select episodes from the index with filters and export them as a LeRobot dataset + manifest."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from curate import lerobot_io, provenance
from curate.errors import CurateError
from curate.outputs import check_target
from curate.filters import Filter, Threshold, apply_filters
from curate.index import Index
from curate.lerobot_subset import Span
from curate.ranking import ranked, ranked_retrieval
from curate.trimming import useful_span

MANIFEST = "curate_selection.json"
SCORE_COLUMNS = ("selection_score", "final_progress", "success_prob", "match_prob", "similarity")  # those the source has


@dataclass(frozen=True)
class SelectConfig:
    """`curate filter`, the selection: which rows, which filters."""

    index: Path
    instruction: str
    filters: tuple[Filter, ...]
    dataset: str | None = None
    model: str | None = None
    per_task: bool = False
    retrieval: bool = False  # select from `curate retrieve` results (the instruction is the query) instead of scores
    frames: bool = False  # fetch the per-frame scores too (trimming needs them)

    def __post_init__(self) -> None:
        if not self.filters:
            raise CurateError("no filter given; pass one of --top-k, --top-frac, --min-progress, --min-success, --min-match")
        if self.retrieval and any(isinstance(f, Threshold) for f in self.filters):
            raise CurateError("--min-progress, --min-success and --min-match need reward-model scores; with --retrieval use --top-k or --top-frac")
        if self.retrieval and self.frames:
            raise CurateError("--trim needs the reward model's per-frame scores; drop --retrieval or --trim")


@dataclass(frozen=True)
class ExportConfig:
    """`curate filter`, the export: where, and how the kept episodes are written."""

    out: Path
    overwrite: bool = False
    relabel_task: bool = False
    trim: bool = False  # cut each kept episode to its useful span (curate/trimming.py)
    trim_margin: int = 2
    link: bool = False  # hard-link the source's video files instead of copying them
    reencode: bool = False  # lerobot's re-encoding export: no unused video bytes, much slower

    def __post_init__(self) -> None:
        if self.trim_margin < 0:
            raise CurateError(f"--trim-margin must be 0 or more frames, got {self.trim_margin}")


@dataclass(frozen=True)
class Selection:
    rows: pd.DataFrame  # every candidate row, best first, with `reason` (None = kept)
    model: str
    dataset: str
    config: SelectConfig

    @property
    def kept(self) -> pd.DataFrame:
        return self.rows[self.rows["reason"].isna()]

    def dropped_by_reason(self) -> Counter:
        return Counter(self.rows["reason"].dropna())


def select(config: SelectConfig) -> Selection:
    """Rank the index's rows for the instruction and apply the filters."""
    wanted = [config.dataset] if config.dataset else []
    if config.retrieval:
        rows, model = ranked_retrieval(config.index, config.instruction, wanted, config.model)
    else:
        rows, model, _ = ranked(config.index, config.instruction, wanted, config.model, frames=config.frames)
        rows = rows.drop(columns="rank")
    datasets = sorted(rows["dataset"].unique())
    if len(datasets) > 1:
        raise CurateError(f"the index holds scores from {len(datasets)} datasets for this instruction; pass --dataset, one of: {', '.join(datasets)}")
    if rows.empty:
        raise CurateError(f"no scored episodes under {config.instruction!r}" + (f" in {config.dataset}" if config.dataset else ""))
    _check_unchanged(config.index, datasets[0])
    return Selection(apply_filters(rows, list(config.filters), config.per_task), model, datasets[0], config)


def check_export_target(selection: Selection, config: ExportConfig) -> None:
    """`out` may be written (apart from the index and dataset; replaced only with --overwrite and only if curate's)."""
    check_target(config.out, config.overwrite, inputs=[selection.config.index, selection.dataset])


def _check_unchanged(index_path: Path, dataset: str) -> None:
    """The dataset at the scored path is still the one that was scored (its metadata hash is the index's)."""
    with Index(index_path, read_only=True) as index:
        if index.fingerprint(dataset) is None:
            return
        if not (Path(dataset) / "meta" / "info.json").is_file():
            raise CurateError(f"dataset {dataset} is gone; the index {index_path} scored it there: move it back or rescore it")
        index.check_unchanged(dataset, lerobot_io.dataset_fingerprint(Path(dataset)))


def export(selection: Selection, config: ExportConfig) -> Path:
    """Write the kept episodes as a LeRobot v3 dataset with a `curate_selection.json` manifest, atomically."""
    chosen = selection.config
    if config.trim and not chosen.frames:
        raise CurateError("--trim needs the per-frame scores: select with frames=True")
    kept = selection.kept
    if kept.empty:
        raise CurateError("the filters dropped every episode; loosen them (e.g. a larger --top-k or a lower threshold)")
    order = sorted(int(i) for i in kept["episode_index"])  # exported episodes keep the source's order
    by_episode = kept.set_index("episode_index")
    spans = [_span(by_episode.loc[i], config) for i in order]
    manifest = {
        "index": str(chosen.index.resolve()),
        "dataset": selection.dataset,
        "model": selection.model,
        "source": "retrieval" if chosen.retrieval else "scores",
        "instruction": chosen.instruction,
        "filters": {f.name: f.value for f in chosen.filters},
        "per_task": chosen.per_task,
        "relabel_task": config.relabel_task,
        "trim_margin": config.trim_margin if config.trim else None,
        "kept": len(kept),
        "dropped": dict(selection.dropped_by_reason()),
        "code_version": provenance.code_version(),
        "created": provenance.now(),
        "episodes": [
            {
                "episode_index": new,
                "source_episode_index": old,
                "source_frames": [span.start, int(by_episode.loc[old, "length"]) if span.end is None else span.end],
                "task": by_episode.loc[old, "task"],
                **{column: None if pd.isna(v := by_episode.loc[old, column]) else float(v) for column in SCORE_COLUMNS if column in kept},
            }
            for new, (old, span) in enumerate(zip(order, spans))
        ],
    }
    return lerobot_io.write_subset(
        selection.dataset, spans, config.out, overwrite=config.overwrite, task=chosen.instruction if config.relabel_task else None,
        extra_files={MANIFEST: lambda: manifest}, inputs=[chosen.index], link=config.link, reencode=config.reencode,
    )


def _span(row: pd.Series, config: ExportConfig) -> Span:
    """The frames of a kept episode to export: all of them, or with --trim its useful span."""
    if not config.trim:
        return Span(int(row.name))
    start, end = useful_span(row["frame_index"], row["frame_progress"], row["frame_success"], int(row["length"]), config.trim_margin)
    return Span(int(row.name), start, end)
