"""Frozen records that cross policies' modules and leave the package: a simulated episode."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Rollout:
    """One simulated episode, kept at the stored frames: images per camera name (T, H, W, 3) uint8, states (T, 39),
    actions (T, 4), rewards (T,) and successes (T,) (success anywhere since the previous stored frame)."""

    task: str
    instruction: str
    recipe: str
    seed: int
    images: dict[str, np.ndarray]
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    successes: np.ndarray

    def __post_init__(self) -> None:
        length = len(self.states)
        assert self.actions.shape[0] == length and self.rewards.shape == (length,) and self.successes.shape == (length,)
        for name, frames in self.images.items():
            assert frames.shape[0] == length and frames.ndim == 4 and frames.dtype == np.uint8, (name, frames.shape)
