"""The one module that touches lerobot's dataset API: open datasets, list episodes, decode frames, write datasets."""

import contextlib
import hashlib
import io
import json
import logging
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from curate.errors import CurateError
from curate.lerobot_subset import Span, write_spans
from curate.outputs import atomic_folder
from curate.records import EpisodeData, EpisodeInfo

SUCCESS_KEY = "next.success"
VIDEO_FILE_MB = 16


def local_root(source: str | Path) -> Path:
    """The absolute root of a complete local LeRobot v3 dataset (checked without loading its frames)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise CurateError(f"dataset path {path} does not exist; give a LeRobot v3 dataset root (the folder with meta/info.json)")
    info_path = path / "meta" / "info.json"
    if not info_path.is_file():
        raise CurateError(f"{path} is not a LeRobot dataset root (no meta/info.json); point to the folder that holds meta/, data/ and videos/")
    try:
        version = json.loads(info_path.read_text())["codebase_version"]
    except (json.JSONDecodeError, KeyError) as err:
        raise CurateError(f"{info_path} is unreadable ({err}); the dataset is corrupt") from err
    if not str(version).startswith("v3"):
        raise CurateError(f"{path} is a LeRobot {version} dataset; convert it to v3.0 with lerobot's convert_dataset_v21_to_v30 script")
    _check_files(path.resolve(), json.loads(info_path.read_text()))
    return path.resolve()


def open_dataset(source: str | Path) -> LeRobotDataset:
    """Open a local LeRobot v3 root, or a hub id (`owner/name`) when no such local path exists."""
    path = Path(source).expanduser()
    if path.exists():
        local_root(path)
        try:
            return LeRobotDataset(f"local/{path.resolve().name}", root=path.resolve())
        except Exception as err:  # lerobot raises many types for a broken root
            raise CurateError(f"cannot open the LeRobot dataset at {path}: {err}") from err
    if str(source).count("/") == 1 and not str(source).startswith((".", "/", "~")):
        try:
            return LeRobotDataset(str(source))
        except Exception as err:
            raise CurateError(f"{source} is not a local path and could not be loaded from the hub ({type(err).__name__}); give the dataset's local root") from err
    raise CurateError(f"dataset path {path} does not exist; give a LeRobot v3 dataset root (the folder with meta/info.json)")


def _check_files(root: Path, info: dict) -> None:
    """Every metadata and data file a local dataset needs is there: lerobot would go to the hub for a missing one."""
    import pyarrow.parquet as pq

    incomplete = "the dataset is incomplete: copy it again or regenerate it"
    if not (root / "meta" / "tasks.parquet").is_file():
        raise CurateError(f"{root / 'meta' / 'tasks.parquet'} is missing; {incomplete}")
    episode_tables = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not episode_tables:
        raise CurateError(f"{root / 'meta' / 'episodes'} holds no episode table; {incomplete}")
    data_files = set()
    for table in episode_tables:
        try:
            columns = pq.read_table(table, columns=["data/chunk_index", "data/file_index"]).to_pydict()
        except Exception as err:  # pyarrow raises several types for a truncated or foreign file
            raise CurateError(f"cannot read {table} ({type(err).__name__}); {incomplete}") from None
        data_files |= set(zip(columns["data/chunk_index"], columns["data/file_index"], strict=True))
    for chunk, file in sorted(data_files):
        data = root / info.get("data_path", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet").format(chunk_index=chunk, file_index=file)
        if not data.is_file():
            raise CurateError(f"data file {data} is missing; {incomplete}")


def dataset_fingerprint(root: Path) -> str:
    """Hash of the dataset's metadata files (info, tasks, episode tables): changes when episodes change."""
    digest = hashlib.sha256()
    for path in sorted((root / "meta").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def dataset_root(ds: LeRobotDataset) -> Path:
    """The dataset's root folder, absolute."""
    return Path(ds.root).resolve()


def camera_keys(ds: LeRobotDataset) -> list[str]:
    """The dataset's camera feature keys (videos and images), in feature order."""
    return list(ds.meta.camera_keys)


def resolve_camera(ds: LeRobotDataset, camera: str | None) -> str:
    """The camera key to use: `camera` (full key or its last part, e.g. `corner2`), else the first video key."""
    keys = camera_keys(ds)
    if not keys:
        raise CurateError(f"dataset {dataset_root(ds)} has no camera features; the reward model needs images")
    if camera is None:
        return (list(ds.meta.video_keys) or keys)[0]
    for key in keys:
        if camera in (key, key.removeprefix("observation.images.")):
            return key
    raise CurateError(f"unknown camera key {camera!r}; this dataset has: {', '.join(keys)}")


def resolve_cameras(ds: LeRobotDataset, camera: str | None) -> tuple[str, ...]:
    """`resolve_camera`'s one key, or with `all` every camera key of the dataset."""
    if camera == "all" and camera_keys(ds):
        return tuple(camera_keys(ds))
    return (resolve_camera(ds, None if camera == "all" else camera),)


def list_episodes(ds: LeRobotDataset) -> list[EpisodeInfo]:
    """Every episode with its length, task strings, camera keys and, where the dataset has `next.success`, its
    per-frame success."""
    episodes = ds.meta.episodes
    if episodes is None or len(episodes) == 0:
        return []
    success: dict[int, np.ndarray] | None = None
    if SUCCESS_KEY in ds.meta.features:
        labels = ds.hf_dataset.select_columns(["episode_index", SUCCESS_KEY]).with_format("numpy")[:]
        frame_episode = np.asarray(labels["episode_index"]).reshape(-1)
        order = np.argsort(frame_episode, kind="stable")  # one pass, not one scan of every frame per episode
        ids, starts = np.unique(frame_episode[order], return_index=True)
        parts = np.split(np.asarray(labels[SUCCESS_KEY]).reshape(-1)[order].astype(bool), starts[1:])
        success = {int(i): part for i, part in zip(ids, parts, strict=True)}
    keys = tuple(camera_keys(ds))
    return [
        EpisodeInfo(
            episode_index=int(row["episode_index"]), length=int(row["length"]), tasks=tuple(row["tasks"]), camera_keys=keys,
            success=None if success is None else success.get(int(row["episode_index"]), np.zeros(0, dtype=bool)),
        )
        for row in episodes
    ]


def episode_offsets(ds: LeRobotDataset) -> dict[int, int]:
    """Each episode's first global frame index (the dataset's `index` column)."""
    return {int(row["episode_index"]): int(row["dataset_from_index"]) for row in ds.meta.episodes}


def read_columns(ds: LeRobotDataset, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Whole numeric columns (one row per frame, all episodes), plus `episode_index`."""
    missing = [key for key in keys if key not in ds.meta.features]
    if missing:
        raise CurateError(f"dataset {dataset_root(ds)} has no {', '.join(missing)}; it has: {', '.join(ds.meta.features)}")
    table = ds.hf_dataset.select_columns(["episode_index", *keys]).with_format("numpy")[:]
    return {key: np.asarray(table[key]) for key in ["episode_index", *keys]}


def feature_stats(ds: LeRobotDataset, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's mean and std of a feature (meta/stats.json), as lerobot computed them."""
    stats = ds.meta.stats.get(key) if ds.meta.stats else None
    if stats is None:
        raise CurateError(f"dataset {dataset_root(ds)} has no stats for {key}; recompute them with lerobot-edit-dataset --operation.type recompute_stats")
    return np.asarray(stats["mean"], dtype=np.float32), np.asarray(stats["std"], dtype=np.float32)


def _video_backend() -> str:
    """torchcodec where its FFmpeg libraries load (fast seeking), pyav otherwise."""
    from lerobot.utils.import_utils import get_safe_default_video_backend

    return get_safe_default_video_backend()


def decode_frames(
    ds: LeRobotDataset, requests: Sequence[tuple[int, Sequence[int]]], cameras: Sequence[str]
) -> list[dict[str, np.ndarray]]:
    """Decode frames: for each (episode_index, frame indices) request, {camera key: uint8 array (K, H, W, 3)}.

    Requests that share a video file are decoded with one call per file (per-call seeking dominates the cost).
    """
    for episode, indices in requests:
        if not 0 <= int(episode) < ds.meta.total_episodes:
            raise CurateError(f"episode {episode} is not in the dataset (it has {ds.meta.total_episodes})")
        length = int(ds.meta.episodes[int(episode)]["length"])
        bad = [int(i) for i in indices if not 0 <= int(i) < length]
        if bad:
            raise CurateError(f"frame indices {bad} are outside episode {episode} (length {length})")
    results: list[dict[str, np.ndarray]] = [{} for _ in requests]
    for camera in cameras:
        if camera not in camera_keys(ds):
            raise CurateError(f"unknown camera key {camera!r}; this dataset has: {', '.join(camera_keys(ds))}")
        if camera in ds.meta.video_keys:
            _decode_video_camera(ds, requests, camera, results)
        else:
            _decode_image_camera(ds, requests, camera, results)
    return results


def _decode_video_camera(
    ds: LeRobotDataset, requests: Sequence[tuple[int, Sequence[int]]], camera: str, results: list[dict[str, np.ndarray]]
) -> None:
    from lerobot.datasets.video_utils import decode_video_frames

    by_file: dict[Path, list[int]] = defaultdict(list)
    for position, (episode, _) in enumerate(requests):
        by_file[Path(ds.root) / ds.meta.get_video_file_path(int(episode), camera)].append(position)
    backend = _video_backend()
    for path, positions in by_file.items():
        if not path.is_file():
            raise CurateError(f"video file {path} is missing; re-download or regenerate the dataset")
        timestamps: list[float] = []
        for position in positions:
            episode, indices = requests[position]
            start = float(ds.meta.episodes[int(episode)][f"videos/{camera}/from_timestamp"])
            timestamps += [start + int(i) / ds.fps for i in indices]
        try:
            frames = decode_video_frames(path, timestamps, ds.tolerance_s, backend, return_uint8=True)
        except Exception as err:  # decoders raise RuntimeError, av errors, FrameTimestampError...
            raise CurateError(f"cannot decode video file {path} ({type(err).__name__}); the file is corrupt or truncated") from err
        frames = frames.permute(0, 2, 3, 1).contiguous().numpy()  # (N, C, H, W) -> (N, H, W, C)
        offset = 0
        for position in positions:
            count = len(requests[position][1])
            results[position][camera] = frames[offset : offset + count]
            offset += count


def _decode_image_camera(
    ds: LeRobotDataset, requests: Sequence[tuple[int, Sequence[int]]], camera: str, results: list[dict[str, np.ndarray]]
) -> None:
    table = ds.hf_dataset.select_columns([camera]).with_format(None)
    for position, (episode, indices) in enumerate(requests):
        start = int(ds.meta.episodes[int(episode)]["dataset_from_index"])
        rows = table[[start + int(i) for i in indices]][camera]
        results[position][camera] = np.stack([np.asarray(image.convert("RGB")) for image in rows]).astype(np.uint8)


def frame_features(example: EpisodeData, camera_keys: Sequence[str]) -> dict[str, dict]:
    """LeRobot feature specs for the arrays of `example` (camera keys stored as video)."""
    features = {}
    for key, value in example.arrays.items():
        if key in camera_keys:
            features[key] = {"dtype": "video", "shape": tuple(value.shape[1:]), "names": ["height", "width", "channels"]}
        else:
            shape = tuple(value.shape[1:]) or (1,)
            dtype = "bool" if value.dtype == np.bool_ else "float32"
            features[key] = {"dtype": dtype, "shape": shape, "names": None}
    return features


def merge_datasets(out: Path, roots: Sequence[Path], overwrite: bool = False, extra_files: dict[str, Callable[[], dict]] | None = None) -> Path:
    """Join datasets of the same features and fps, in order, into a new one at `out`, atomically, through lerobot's
    own aggregation with every video and data file copied as it is (no re-encoding); `extra_files` as in
    `write_dataset`."""
    from lerobot.datasets.aggregate import aggregate_datasets

    out = Path(out).expanduser().resolve()
    with atomic_folder(out, overwrite) as partial, contextlib.redirect_stderr(io.StringIO()):  # its tqdm bars: callers show progress
        aggregate_datasets(
            repo_ids=[f"local/{root.name}" for root in roots], aggr_repo_id=f"local/{out.name}", roots=list(roots), aggr_root=partial,
            concatenate_videos=False, concatenate_data=False,
        )
        for name, content in (extra_files or {}).items():
            (partial / name).write_text(json.dumps(content(), indent=2))
    return out


def write_dataset(
    out: Path,
    episodes: Iterable[EpisodeData],
    fps: int,
    camera_keys: Sequence[str],
    robot_type: str | None = None,
    overwrite: bool = False,
    extra_files: dict[str, Callable[[], dict]] | None = None,
) -> Path:
    """Write episodes as a new LeRobot v3 dataset at `out`, atomically (nothing appears at `out` unless all is written).

    `extra_files` maps a file name in the root to a function giving its JSON content, called once all is written.
    """
    out = Path(out).expanduser().resolve()
    with atomic_folder(out, overwrite) as partial:
        dataset = None
        try:
            for episode in episodes:
                if dataset is None:
                    features = frame_features(episode, camera_keys)
                    dataset = LeRobotDataset.create(
                        repo_id=f"local/{out.name}", fps=fps, features=features, root=partial, robot_type=robot_type,
                        # lerobot appends each episode to the current video file by rewriting it: smaller files keep
                        # that cost flat instead of growing with the dataset (200 MB default: writes slowed 3x)
                        video_files_size_in_mb=VIDEO_FILE_MB,
                    )
                for t in range(episode.length):
                    frame = {key: _frame_value(value[t]) for key, value in episode.arrays.items()}
                    frame["task"] = episode.task
                    dataset.add_frame(frame)
                dataset.save_episode()
        finally:
            # Flush lerobot's writers now: left to garbage collection they would write into the removed folder.
            if dataset is not None:
                dataset.finalize()
        if dataset is None:
            raise CurateError("no episodes to write; ask for at least one episode")
        for name, content in (extra_files or {}).items():
            (partial / name).write_text(json.dumps(content(), indent=2))
    return out


def _frame_value(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    return value.reshape(1) if value.ndim == 0 else value


def write_subset(
    source: str | Path,
    keep: Sequence[int | Span],
    out: Path,
    overwrite: bool = False,
    task: str | None = None,
    extra_files: dict[str, Callable[[], dict]] | None = None,
    inputs: Sequence[str | Path] = (),
    link: bool = False,
    reencode: bool = False,
) -> Path:
    """Write the episodes `keep` of the local dataset `source` (indices, or `Span`s to cut them to frame ranges) as a
    new LeRobot v3 dataset at `out` (renumbered from 0, in the source's order), atomically; `task` relabels every
    exported episode.
    `out` may not touch the source or other `inputs`; the source is untouched.

    By default the source's encoded video is reused (files copied whole, or hard-linked with `link`) and state and
    action values are copied bit-identically; `reencode` takes lerobot's `delete_episodes`, which re-encodes every
    video file that mixes kept and dropped episodes so the export holds no unused bytes (whole episodes only).
    """
    spans = sorted((k if isinstance(k, Span) else Span(int(k)) for k in keep), key=lambda s: s.episode)
    out = Path(out).expanduser().resolve()
    root = local_root(source)
    total = json.loads((root / "meta" / "info.json").read_text())["total_episodes"]
    if not spans:
        raise CurateError("no episodes selected to export; loosen the filter")
    outside = sorted(s.episode for s in spans if not 0 <= s.episode < total)
    if outside:
        raise CurateError(f"episodes {outside} are not in the dataset (it has {total}); the index is out of date: rescore it")
    trimmed = any(s.start != 0 or s.end is not None for s in spans)
    if reencode and (trimmed or link):
        raise CurateError("--reencode exports whole episodes by copying; drop --trim and --link, or drop --reencode")
    with atomic_folder(out, overwrite, inputs=[root, *inputs]) as partial:
        if reencode:
            _reencode_subset(open_dataset(root), [s.episode for s in spans], partial, out.name, task)
        else:
            write_spans(root, spans, partial, task=task, link=link)
        for name, content in (extra_files or {}).items():
            (partial / name).write_text(json.dumps(content(), indent=2))
    return out


def _reencode_subset(ds: LeRobotDataset, keep: Sequence[int], partial: Path, name: str, task: str | None) -> None:
    from lerobot.datasets.dataset_tools import delete_episodes, modify_tasks

    kept = set(keep)
    drop = [i for i in range(ds.meta.total_episodes) if i not in kept]
    if drop:
        logging.getLogger("lerobot").setLevel(logging.WARNING)
        delete_episodes(ds, drop, output_dir=partial, repo_id=f"local/{name}")
    else:
        shutil.copytree(dataset_root(ds), partial, dirs_exist_ok=True)
    if task is not None:
        modify_tasks(LeRobotDataset(f"local/{name}", root=partial), new_task=task)
