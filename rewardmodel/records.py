"""Frozen records the reward model takes in: trajectories (frames + labels) and training pair batches."""

from dataclasses import dataclass, field

import numpy as np
import torch

QUALITIES = ("failure", "suboptimal", "successful")  # worst to best; from when success first happens, never the recipe


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One episode seen by one camera: cached frames (N, S, S, 3) uint8 at episode frame indices `frame_index`,
    per-cached-frame success, the instruction, and the quality label derived from success."""

    frames: np.ndarray
    frame_index: np.ndarray
    length: int
    instruction: str
    success: np.ndarray
    quality: str
    source: str = ""  # where it came from (dataset, episode, camera), for messages

    def __post_init__(self) -> None:
        n = len(self.frames)
        assert self.frames.ndim == 4 and self.frames.shape[-1] == 3 and self.frames.dtype == np.uint8, self.frames.shape
        assert self.frame_index.shape == (n,) and self.success.shape == (n,), (self.frame_index.shape, self.success.shape)
        assert self.quality in QUALITIES, self.quality

    @property
    def first_success(self) -> int | None:
        """Position (in the cached frames) of the first success, or None."""
        return int(np.argmax(self.success)) if self.success.any() else None


@dataclass(frozen=True, eq=False)
class PairBatch:
    """B training pairs of T frames each, with targets; `a_is_better` says which trajectory was the chosen one."""

    frames_a: torch.Tensor  # (B, T, S, S, 3) uint8
    frames_b: torch.Tensor
    instructions: list[str]
    progress_a: torch.Tensor  # (B, T) targets in [0, 1]
    progress_b: torch.Tensor
    progress_mask_a: torch.Tensor  # (B, T) bool: supervise progress here
    progress_mask_b: torch.Tensor
    success_a: torch.Tensor  # (B, T) 0/1 labels
    success_b: torch.Tensor
    success_mask_a: torch.Tensor
    success_mask_b: torch.Tensor
    a_is_better: torch.Tensor  # (B,) 0/1
    strategies: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # each row's task (its instruction unless it was paraphrased)

    def __post_init__(self) -> None:
        b, t = self.frames_a.shape[:2]
        assert self.frames_b.shape[:2] == (b, t) and len(self.instructions) == b
        for name in ("progress_a", "progress_b", "progress_mask_a", "progress_mask_b", "success_a", "success_b", "success_mask_a", "success_mask_b"):
            assert getattr(self, name).shape == (b, t), (name, getattr(self, name).shape)
        assert self.a_is_better.shape == (b,)
