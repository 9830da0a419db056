"""Tiny datasets' contents and a known index, built in seconds through the same writers users run (the fixtures in
conftest.py build them once per session)."""

from pathlib import Path

import numpy as np

from curate.records import EpisodeData

CAMERAS = ("observation.images.front", "observation.images.side")
# (task, length, first success frame or None)
TINY_EPISODES = [
    ("open the drawer", 10, 4),
    ("open the drawer", 12, None),
    ("press the button", 8, 6),
    ("press the button", 11, 2),
]


def frame_image(episode: int, frame: int, camera: int, size: int = 32) -> np.ndarray:
    """A flat colour that encodes (episode, frame, camera), so decoded frames can be checked despite lossy video."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[..., 0] = 16 + 16 * frame
    image[..., 1] = 40 + 60 * episode
    image[..., 2] = 60 + 120 * camera
    return image


def tiny_episode(episode: int, task: str, length: int, first_success: int | None) -> EpisodeData:
    success = np.zeros(length, dtype=bool)
    if first_success is not None:
        success[first_success:] = True
    arrays = {
        "observation.state": np.arange(length * 3, dtype=np.float32).reshape(length, 3) + 100 * episode,
        "action": np.linspace(-1, 1, length * 2, dtype=np.float32).reshape(length, 2) * (episode + 1) / 4,
        "next.reward": np.linspace(0, 1, length, dtype=np.float32),
        "next.success": success,
    }
    for c, key in enumerate(CAMERAS):
        arrays[key] = np.stack([frame_image(episode, t, c) for t in range(length)])
    return EpisodeData(task=task, arrays=arrays)


FINALS = {0: 0.9, 1: 0.2, 2: 0.6, 3: 0.95}
SUCCESS = {0: 0.3, 1: 0.1, 2: 0.6, 3: 0.9}


def known_index(path: Path, dataset: Path, instruction: str = "do the task") -> Path:
    """An index whose scores we choose (ranked: 3, 0, 2, 1), written through the real writer."""
    from curate.index import Index, ScoreRow

    with Index(path) as index:
        index.write(
            ScoreRow(str(dataset.resolve()), e, instruction, "m@1", "run", TINY_EPISODES[e][0], TINY_EPISODES[e][1], FINALS[e], 0.5, SUCCESS[e], (0, 5), (0.1, FINALS[e]), (0.0, SUCCESS[e]))
            for e in range(4)
        )
    return path
