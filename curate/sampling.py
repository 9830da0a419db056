"""Which frames of an episode get scored: K evenly spaced frames, always the last (where progress is judged) and,
for K >= 2, the first; or, densely, every stride-th frame, each seen through the K-frame sample shifted to end at it."""

from dataclasses import dataclass

import numpy as np

from rewardmodel.evaluate import evenly_spaced


def frame_indices(length: int, frames: int) -> np.ndarray:
    """Ascending 0-based frame indices; all frames when the episode is shorter than `frames`, none when it is empty."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if length <= 0:
        return np.zeros(0, dtype=int)
    return evenly_spaced(length, frames)


def prefix_grid(length: int, frames: int, t: int) -> np.ndarray:
    """The frames the model sees to score frame t densely: the episode's K-frame sample up to its last frame at or
    before t, shifted to end at t. Frame t thus has as many frames before it, as far apart, as in the K-frame pass
    (the model is causal), and a sampled frame's dense score is its K-frame score."""
    return _shifted(frame_indices(length, frames), t)


def _shifted(sample: np.ndarray, t: int) -> np.ndarray:
    last = int(np.searchsorted(sample, t, side="right")) - 1
    return sample[: last + 1] + (t - sample[last])


@dataclass(frozen=True)
class DensePlan:
    targets: np.ndarray  # the scored frames: every stride-th from the first, and the last
    needed: np.ndarray  # every frame any target's grid reads, ascending (what gets decoded)
    grids: list[np.ndarray]  # per target, its grid as positions into `needed`; the last is the whole K-frame sample


def dense_plan(length: int, frames: int, stride: int) -> DensePlan:
    """Every stride-th frame and the last (a stride longer than the episode scores its first and last frame)."""
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    targets = np.unique(np.append(np.arange(0, length, stride), length - 1)) if length > 0 else np.zeros(0, dtype=int)
    sample = frame_indices(length, frames)  # once, not once per target
    grids = [_shifted(sample, int(t)) for t in targets]
    needed = np.unique(np.concatenate(grids)) if grids else np.zeros(0, dtype=int)
    return DensePlan(targets, needed, [np.searchsorted(needed, g) for g in grids])


@dataclass(frozen=True)
class Sampling:
    """How an episode is scored: K evenly spaced frames, or densely (every stride-th frame through K-frame grids)."""

    frames: int = 8
    stride: int | None = None

    def decoded(self, length: int) -> np.ndarray:
        """The frames to decode for an episode of this length."""
        return frame_indices(length, self.frames) if self.stride is None else dense_plan(length, self.frames, self.stride).needed

    def describe(self) -> str:
        if self.stride is None:
            return f"{self.frames} sampled frame{'' if self.frames == 1 else 's'}"
        return f"dense scores ({'every frame' if self.stride == 1 else f'every {self.stride} frames'}, {self.frames}-frame grids)"
