"""Loads LeRobot episodes as in-memory reward-model trajectories: frames decoded once, resized, with success labels."""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from curate import lerobot_io
from curate.errors import CurateError
from curate.records import quality_label
from rewardmodel.images import resize_square
from rewardmodel.records import Trajectory


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8 (antialiased bilinear)."""
    if frames.shape[1:3] == (size, size):
        return frames
    x = resize_square(torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def load_trajectories(
    dataset: str | Path,
    image_size: int,
    cameras: Sequence[str] | None = None,
    frame_stride: int = 2,
    chunk: int = 32,
    on_episodes: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """One Trajectory per (episode, camera) of a dataset with `next.success` labels; every `frame_stride`-th frame
    is kept (a kept frame counts as successful if any frame since the previous kept one was)."""
    ds = lerobot_io.open_dataset(dataset)
    episodes = lerobot_io.list_episodes(ds)
    if not episodes:
        raise CurateError(f"dataset {dataset} has no episodes")
    if episodes[0].success is None:
        raise CurateError(f"dataset {dataset} has no next.success labels; training needs per-frame success (LeRobot's next.success)")
    keys = [lerobot_io.resolve_camera(ds, c) for c in cameras] if cameras else list(ds.meta.video_keys or lerobot_io.camera_keys(ds))
    trajectories = []
    for start in range(0, len(episodes), chunk):
        group = [e for e in episodes[start : start + chunk] if e.length > 0]
        positions = [np.arange(0, e.length, frame_stride) for e in group]
        decoded = lerobot_io.decode_frames(ds, [(e.episode_index, p) for e, p in zip(group, positions, strict=True)], keys)
        for episode, kept, frames in zip(group, positions, decoded, strict=True):
            windows = np.maximum.reduceat(episode.success.astype(np.int8), kept).astype(bool)
            for key in keys:
                trajectories.append(
                    Trajectory(
                        frames=resize_frames(frames[key], image_size),
                        frame_index=kept,
                        length=episode.length,
                        instruction=episode.task,
                        success=windows,
                        quality=quality_label(episode.success),
                        source=f"{lerobot_io.dataset_root(ds)}#{episode.episode_index}:{key}",
                    )
                )
        if on_episodes is not None:
            on_episodes(len(group))
    return trajectories
