"""Frozen records that cross curate's modules: what an episode is, and what gets written."""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode of a LeRobot dataset as listed by `lerobot_io.list_episodes`."""

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    camera_keys: tuple[str, ...]
    # Per-frame success where the dataset has `next.success`, else None.
    success: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def task(self) -> str:
        """The episode's (first) task string."""
        return self.tasks[0] if self.tasks else ""

    @property
    def quality(self) -> str | None:
        """successful / suboptimal / failure from `next.success`; None when the dataset has no success labels."""
        return None if self.success is None else quality_label(self.success)


@dataclass(frozen=True, eq=False)
class EpisodeData:
    """One episode to write: per-frame arrays keyed by feature name (images HWC uint8), and its task string."""

    task: str
    arrays: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        lengths = {key: len(value) for key, value in self.arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"all per-frame arrays of an episode must have one length, got {lengths}")

    @property
    def length(self) -> int:
        return len(next(iter(self.arrays.values())))


# An episode that first succeeds after this share of its frames took too long to count as a good demonstration.
LATE_SUCCESS_FRACTION = 0.6


def quality_label(success: np.ndarray, late_fraction: float = LATE_SUCCESS_FRACTION) -> str:
    """Quality from per-frame success alone: never succeeded -> failure; first success late -> suboptimal."""
    success = np.asarray(success, dtype=bool).reshape(-1)
    if not success.any():
        return "failure"
    first = int(np.argmax(success))
    return "suboptimal" if first >= late_fraction * len(success) else "successful"
