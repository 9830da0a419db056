"""Which frames of an episode get scored: K evenly spaced frames, always the last (where progress is judged) and,
for K >= 2, the first."""

import numpy as np

from rewardmodel.evaluate import evenly_spaced


def frame_indices(length: int, frames: int) -> np.ndarray:
    """Ascending 0-based frame indices; all frames when the episode is shorter than `frames`, none when it is empty."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if length <= 0:
        return np.zeros(0, dtype=int)
    return evenly_spaced(length, frames)
