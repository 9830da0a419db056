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
    episode_files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    source_table = pq.read_table(episode_files, columns=[c for c in pq.read_schema(episode_files[0]).names if not c.startswith("stats/")])
    source = source_table.to_pandas().set_index("episode_index", drop=False)
    episodes = [s.episode for s in spans]
    if episodes != sorted(set(episodes)):
        raise CurateError("episodes to export must be distinct and in ascending order")
    rows = source.loc[episodes]
    lengths = rows["length"].to_numpy()
    starts = np.array([s.start for s in spans])
    ends = np.array([length if s.end is None else s.end for s, length in zip(spans, lengths)])
    if ((starts < 0) | (ends > lengths) | (ends - starts < 1)).any():
        raise CurateError("a frame span is empty or outside its episode; every kept episode needs at least one frame")
    new_lengths = ends - starts
    new_episode = {old: new for new, old in enumerate(episodes)}
    tasks, task_map = _tasks(root, rows, task)

    out.mkdir(parents=True, exist_ok=True)
    data_rows, numeric_stats = _write_data(root, info, rows, starts, ends, new_episode, task_map, out)
    video_keys = [key for key, feature in info["features"].items() if feature["dtype"] == "video"]
    for key in video_keys:
        _copy_videos(root, info, rows, key, out, link)

    stats = _video_stats(episode_files, episodes, video_keys)
    for episode_stats, numeric in zip(stats, numeric_stats, strict=True):
        episode_stats.update(numeric)
    table = {
        "episode_index": np.arange(len(spans)),
        "length": new_lengths,
        "tasks": [[task] for _ in spans] if task is not None else list(rows["tasks"]),
        "meta/episodes/chunk_index": np.zeros(len(spans), dtype=int),
        "meta/episodes/file_index": np.zeros(len(spans), dtype=int),
        "data/chunk_index": rows["data/chunk_index"].to_numpy(),
        "data/file_index": rows["data/file_index"].to_numpy(),
        "dataset_from_index": np.cumsum(new_lengths) - new_lengths,
        "dataset_to_index": np.cumsum(new_lengths),
    }
    for key in video_keys:
        for column in ("chunk_index", "file_index"):
            table[f"videos/{key}/{column}"] = rows[f"videos/{key}/{column}"].to_numpy()
        table[f"videos/{key}/from_timestamp"] = rows[f"videos/{key}/from_timestamp"].to_numpy() + starts / fps
        table[f"videos/{key}/to_timestamp"] = table[f"videos/{key}/from_timestamp"] + new_lengths / fps
    schema = pq.read_schema(episode_files[0])
    for column in schema.names:
        if column.startswith("stats/"):
            _, key, name = column.split("/", 2)
            table[column] = [s[key][name].tolist() for s in stats]
    (out / EPISODES_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict({name: table[name] for name in schema.names}, schema=schema), out / EPISODES_FILE)

    tasks.to_parquet(out / "meta" / "tasks.parquet")
    info.update(total_episodes=len(spans), total_frames=int(data_rows), total_tasks=len(tasks), splits={"train": f"0:{len(spans)}"})
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    _write_stats(stats, out)


def _tasks(root: Path, rows: pd.DataFrame, task: str | None) -> tuple[pd.DataFrame, dict[int, int]]:
    """The subset's tasks table and the map from source task_index to the subset's."""
    source = pd.read_parquet(root / "meta" / "tasks.parquet")
    if task is not None:
        return pd.DataFrame({"task_index": [0]}, index=pd.Index([task], name="task")), {int(i): 0 for i in source["task_index"]}
    used = {t for tasks in rows["tasks"] for t in tasks}
    kept = source[source.index.isin(used)].sort_values("task_index")
    task_map = {int(old): new for new, old in enumerate(kept["task_index"])}
    return kept.assign(task_index=[task_map[int(i)] for i in kept["task_index"]]), task_map


def _write_data(root, info, rows, starts, ends, new_episode, task_map, out) -> tuple[int, list[dict]]:
    """Copy the kept rows of every data file the spans touch, renumbered; returns the row count and, per episode, the
    stats of its numeric features (recomputed: a trimmed episode's values differ from the source's)."""
    from lerobot.datasets.compute_stats import compute_episode_stats

    fps = info["fps"]
    span_of = {int(e): (int(s), int(t)) for e, s, t in zip(rows["episode_index"], starts, ends)}
    numeric = {key: f for key, f in info["features"].items() if f["dtype"] not in ("video", "image", "string", "language")}
    written, stats = 0, []
    for (chunk, file), _ in rows.groupby(["data/chunk_index", "data/file_index"], sort=True):
        relative = info["data_path"].format(chunk_index=chunk, file_index=file)
        table = pq.read_table(root / relative)
        episode = table.column("episode_index").to_numpy()
        frame = table.column("frame_index").to_numpy()
        lo = np.array([span_of.get(int(e), (0, 0))[0] for e in episode])
        hi = np.array([span_of.get(int(e), (0, 0))[1] for e in episode])
        table = table.filter(pa.array((frame >= lo) & (frame < hi)))
        episode, frame = table.column("episode_index").to_numpy(), table.column("frame_index").to_numpy()
        start = np.array([span_of[int(e)][0] for e in episode])
        values = {
            "index": np.arange(written, written + len(episode)),
            "episode_index": np.array([new_episode[int(e)] for e in episode]),
            "task_index": np.array([task_map[int(t)] for t in table.column("task_index").to_numpy()]),
            "frame_index": frame - start,
            "timestamp": (frame - start) / fps,
        }
        for name in RENUMBERED:
            position = table.schema.get_field_index(name)
            table = table.set_column(position, table.schema.field(position), pa.array(values[name], type=table.schema.field(position).type))
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out / relative, compression="snappy")
        written += len(episode)
        for new in np.unique(table.column("episode_index").to_numpy()):
            part = table.filter(pa.array(table.column("episode_index").to_numpy() == new))
            arrays = {key: np.stack(part.column(key).to_numpy(zero_copy_only=False)).astype(np.float64).reshape(len(part), -1) for key in numeric}
            stats.append(compute_episode_stats(arrays, numeric))
    return written, stats


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
                raise CurateError(f"cannot hard-link {source} into {out} ({os.strerror(err.errno)}); export to the source's filesystem or drop --link to copy") from err
            raise


def _video_stats(episode_files: list[Path], episodes: list[int], video_keys: list[str]) -> list[dict]:
    """The source's per-episode stats of each video feature (sampled frames; kept as they are for a trimmed episode)."""
    columns = [c for c in pq.read_schema(episode_files[0]).names if c.startswith("stats/") and c.split("/")[1] in video_keys]
    table = pq.read_table(episode_files, columns=["episode_index", *columns])
    position = {int(e): i for i, e in enumerate(table.column("episode_index").to_numpy())}
    values = {c: table.column(c).to_pylist() for c in columns}
    stats = []
    for episode in episodes:
        per_key: dict[str, dict] = {key: {} for key in video_keys}
        for column in columns:
            _, key, name = column.split("/", 2)
            per_key[key][name] = np.asarray(values[column][position[episode]], dtype=np.float64)
        stats.append(per_key)
    return stats


def _write_stats(stats: list[dict], out: Path) -> None:
    from lerobot.datasets import aggregate_stats, write_stats

    write_stats(aggregate_stats(stats), out)
