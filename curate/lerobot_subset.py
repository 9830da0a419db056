"""Write part of a LeRobot v3 dataset as a new dataset without re-encoding its video.

A v3 episode points into a shared video file by timestamp, so a subset can reuse the source's encoded video: the
video files that hold a kept episode are copied (or hard-linked) whole, and the data parquet, episode table, tasks,
info and stats are rewritten for the kept episodes. A kept episode may be cut to a frame span (its video timestamps
move with it). The bytes of dropped episodes stay inside the copied video files, unused; `curate filter --reencode`
takes lerobot's re-encoding path instead when they must go.
"""

import errno
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError

EPISODES_FILE = Path("meta/episodes/chunk-000/file-000.parquet")
RENUMBERED = ("index", "episode_index", "task_index", "frame_index", "timestamp")  # columns a subset rewrites


@dataclass(frozen=True)
class Span:
    """Frames [start, end) of source episode `episode` (end None = to the episode's end)."""

    episode: int
    start: int = 0
    end: int | None = None


def write_spans(root: Path, spans: Sequence[Span], out: Path, task: str | None = None, link: bool = False) -> None:
    """Write the spans (in ascending episode order) of the dataset at `root` as a LeRobot v3 dataset in the empty
    folder `out`; `task` relabels every episode; `link` hard-links the video files instead of copying them."""
    info = json.loads((root / "meta" / "info.json").read_text())
    fps = info["fps"]
    source = pa.concat_tables(pq.ParquetFile(f).read() for f in sorted((root / "meta" / "episodes").rglob("*.parquet")))
    position = {int(e): i for i, e in enumerate(source.column("episode_index").to_numpy())}
    episodes = [s.episode for s in spans]
    if episodes != sorted(set(episodes)):
        raise CurateError("episodes to export must be distinct and in ascending order")
    kept = source.take(pa.array([position[e] for e in episodes]))
    rows = kept.select([c for c in kept.column_names if not c.startswith("stats/")]).to_pandas()
    lengths = rows["length"].to_numpy()
    starts = np.array([s.start for s in spans])
    ends = np.array([length if s.end is None else s.end for s, length in zip(spans, lengths)])
    if ((starts < 0) | (ends > lengths) | (ends - starts < 1)).any():
        raise CurateError("a frame span is empty or outside its episode; every kept episode needs at least one frame")
    new_lengths = ends - starts
    source_tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    tasks, task_map = _tasks(source_tasks, rows, task)
    numeric = [key for key, f in info["features"].items() if f["dtype"] not in ("video", "image", "string", "language")]
    # an episode's own stats stay valid unless it was cut or mixes tasks; the renumbered columns follow in closed form
    recompute = {new for new, (cut, tasks_of) in enumerate(zip(new_lengths != lengths, rows["tasks"])) if cut or len(tasks_of) != 1}

    out.mkdir(parents=True, exist_ok=True)
    data_rows, recomputed = _write_data(root, info, rows, starts, ends, task_map, recompute, kept.schema, numeric, out)
    video_keys = [key for key, feature in info["features"].items() if feature["dtype"] == "video"]
    for key in video_keys:
        _copy_videos(root, info, rows, key, out, link)

    offsets = np.cumsum(new_lengths) - new_lengths
    columns = {
        "episode_index": np.arange(len(spans)),
        "length": new_lengths,
        "meta/episodes/chunk_index": np.zeros(len(spans), dtype=int),
        "meta/episodes/file_index": np.zeros(len(spans), dtype=int),
        "dataset_from_index": offsets,
        "dataset_to_index": offsets + new_lengths,
    }
    if task is not None:
        columns["tasks"] = [[task]] * len(spans)
    for key in video_keys:
        columns[f"videos/{key}/from_timestamp"] = rows[f"videos/{key}/from_timestamp"].to_numpy() + starts / fps
        columns[f"videos/{key}/to_timestamp"] = columns[f"videos/{key}/from_timestamp"] + new_lengths / fps
    own_task = [task_map[int(i)] for i in _first_task_index(source_tasks, rows)]
    closed = {"index": (offsets, 1.0), "episode_index": (np.arange(len(spans)), 0.0), "task_index": (np.array(own_task), 0.0),
              "frame_index": (np.zeros(len(spans)), 1.0), "timestamp": (np.zeros(len(spans)), 1.0 / fps)}
    for key, (first, step) in closed.items():
        for name in _stat_names(kept.schema, key):
            columns[f"stats/{key}/{name}"] = _arange_stat(name, first, step, new_lengths)
    for column, values in columns.items():
        index = kept.schema.get_field_index(column)
        kept = kept.set_column(index, kept.schema.field(index), pa.array(list(values) if column == "tasks" else values, type=kept.schema.field(index).type))
    for new, stats in recomputed.items():  # cut or mixed-task episodes: every numeric stat from their kept frames
        for key, values in stats.items():
            for name, value in values.items():
                index = kept.schema.get_field_index(f"stats/{key}/{name}")
                column = kept.column(index).to_pylist()
                column[new] = value.tolist()
                kept = kept.set_column(index, kept.schema.field(index), pa.array(column, type=kept.schema.field(index).type))
    (out / EPISODES_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(kept, out / EPISODES_FILE)

    tasks.to_parquet(out / "meta" / "tasks.parquet")
    info.update(total_episodes=len(spans), total_frames=int(data_rows), total_tasks=len(tasks), splits={"train": f"0:{len(spans)}"})
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    _write_stats(kept, [*numeric, *video_keys], out)


def _arange_stat(name: str, first: np.ndarray, step: float, n: np.ndarray) -> list:
    """Stat `name` of the values first + step * k, k = 0 .. n-1, per episode (numpy's linear quantiles)."""
    if name == "count":
        return [[int(v)] for v in n]
    fraction = {"min": 0.0, "max": 1.0, "mean": 0.5}.get(name)
    if name == "std":
        return [[float(v)] for v in step * np.sqrt((n.astype(float) ** 2 - 1) / 12)]
    if fraction is None:
        fraction = int(name[1:]) / 100
    return [[float(v)] for v in first + step * fraction * (n - 1)]


def _first_task_index(source: pd.DataFrame, rows: pd.DataFrame) -> list[int]:
    """Each episode's source task_index (its first task's), from the source's tasks table."""
    return [int(source.loc[tasks[0], "task_index"]) for tasks in rows["tasks"]]


def _tasks(source: pd.DataFrame, rows: pd.DataFrame, task: str | None) -> tuple[pd.DataFrame, dict[int, int]]:
    """The subset's tasks table and the map from the source's task_index (its tasks table `source`) to the subset's."""
    if task is not None:
        return pd.DataFrame({"task_index": [0]}, index=pd.Index([task], name="task")), {int(i): 0 for i in source["task_index"]}
    used = {t for tasks in rows["tasks"] for t in tasks}
    kept = source[source.index.isin(used)].sort_values("task_index")
    task_map = {int(old): new for new, old in enumerate(kept["task_index"])}
    return kept.assign(task_index=[task_map[int(i)] for i in kept["task_index"]]), task_map


def _write_data(root, info, rows, starts, ends, task_map, recompute, schema, numeric, out) -> tuple[int, dict[int, dict]]:
    """Copy the kept rows of every data file the spans touch, renumbered; returns the row count and, for the episodes
    in `recompute`, the stats of their numeric features from the rows kept."""
    fps, size = info["fps"], int(info["total_episodes"])
    lo, hi, renumber = (np.zeros(size, dtype=np.int64) for _ in range(3))
    lo[rows["episode_index"]], hi[rows["episode_index"]] = starts, ends
    renumber[rows["episode_index"]] = np.arange(len(rows))
    new_task = np.zeros(max(task_map) + 1, dtype=np.int64)
    new_task[list(task_map)] = list(task_map.values())
    written, stats = 0, {}
    for (chunk, file), _ in rows.groupby(["data/chunk_index", "data/file_index"], sort=True):
        relative = info["data_path"].format(chunk_index=chunk, file_index=file)
        table = _read_row_groups(root / relative, rows["episode_index"].to_numpy())
        episode, frame = table.column("episode_index").to_numpy(), table.column("frame_index").to_numpy()
        table = table.filter(pa.array((frame >= lo[episode]) & (frame < hi[episode])))
        episode, frame = table.column("episode_index").to_numpy(), table.column("frame_index").to_numpy()
        values = {
            "index": np.arange(written, written + len(episode)),
            "episode_index": renumber[episode],
            "task_index": new_task[table.column("task_index").to_numpy()],
            "frame_index": frame - lo[episode],
            "timestamp": (frame - lo[episode]) / fps,
        }
        for name in RENUMBERED:
            position = table.schema.get_field_index(name)
            table = table.set_column(position, table.schema.field(position), pa.array(values[name], type=table.schema.field(position).type))
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / relative, compression="snappy")
        written += len(episode)
        for new in recompute.intersection(np.unique(values["episode_index"]).tolist()):
            part = values["episode_index"] == new
            stats[new] = {key: _numeric_stats(_matrix(table.column(key).filter(pa.array(part))), _stat_names(schema, key)) for key in numeric}
    return written, stats


def _read_row_groups(path: Path, episodes: np.ndarray) -> pa.Table:
    """The row groups of a data file that can hold one of `episodes`, by their episode_index statistics (every group
    where a file has none): a subset reads its own part of a large file. lerobot writes a group per episode or so."""
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    column = [meta.schema.column(i).path for i in range(meta.num_columns)].index("episode_index")
    groups = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max or bool(np.any((episodes >= stats.min) & (episodes <= stats.max))):
            groups.append(g)
    return parquet.read_row_groups(groups)


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A parquet column (scalars or fixed-size lists) as frames x dims float64."""
    return np.stack(column.to_numpy(zero_copy_only=False)).astype(np.float64).reshape(len(column), -1)


def _stat_names(schema: pa.Schema, key: str) -> list[str]:
    return [c.split("/", 2)[2] for c in schema.names if c.startswith(f"stats/{key}/")]


def _numeric_stats(values: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The per-episode stats lerobot keeps (min, max, mean, std, count, quantiles named qNN) of frames x dims."""
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0), "count": np.array([len(values)])}
    quantiles = [name for name in names if name not in stats]
    stats.update(zip(quantiles, np.quantile(values, [int(name[1:]) / 100 for name in quantiles], axis=0)))
    return {name: stats[name] for name in names}


def _copy_videos(root: Path, info: dict, rows: pd.DataFrame, key: str, out: Path, link: bool) -> None:
    files = sorted(set(zip(rows[f"videos/{key}/chunk_index"], rows[f"videos/{key}/file_index"])))
    for chunk, file in files:
        relative = info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        source, target = root / relative, out / relative
        if not source.is_file():
            raise CurateError(f"video file {source} is missing; the dataset is incomplete: copy it again or regenerate it")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not link:
            shutil.copyfile(source, target)
            continue
        try:
            os.link(source, target)
        except OSError as err:
            if err.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise CurateError(f"cannot hard-link {source} into {out.parent} ({os.strerror(err.errno)}); export to the source's filesystem or drop --link to copy") from err
            raise


def _write_stats(episodes: pa.Table, keys: Sequence[str], out: Path) -> None:
    """meta/stats.json: lerobot's aggregate of the subset's per-episode stats."""
    from lerobot.datasets import aggregate_stats, write_stats

    columns = {(key, name): np.asarray(episodes.column(f"stats/{key}/{name}").to_pylist(), dtype=np.float64) for key in keys for name in _stat_names(episodes.schema, key)}
    per_episode = [{key: {} for key in keys} for _ in range(len(episodes))]
    for (key, name), values in columns.items():
        for i, value in enumerate(values):
            per_episode[i][key][name] = value
    write_stats(aggregate_stats(per_episode), out)
