"""Training pairs in ROBOMETER's four strategies: chosen = a successful segment, rejected = rewind, a suboptimal or
failed run of the same task, another task's video under this instruction, or the chosen video reversed; and two of
ours: another task's video from the nearest instructions, and a late success of the same task, both whole episodes."""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from rewardmodel.errors import RewardModelError
from rewardmodel.records import PairBatch, Trajectory

STRATEGIES = ("rewind", "suboptimal", "different_task", "reverse", "similar_task", "late_success")
DEFAULT_RATIOS = dict.fromkeys(STRATEGIES, 1.0)  # equal ratios trained the shipped model (docs/rewardmodel.md)


def parse_ratios(text: str) -> dict[str, float]:
    """`rewind=1,suboptimal=2` -> the strategy weights (strategies left out get 0); empty: DEFAULT_RATIOS."""
    if not text.strip():
        return dict(DEFAULT_RATIOS)
    try:
        return {name.strip(): float(weight) for name, weight in (part.split("=") for part in text.split(",") if part.strip())}
    except ValueError:
        raise RewardModelError(f"bad --ratios {text!r}; write STRATEGY=WEIGHT,..., e.g. rewind=1,suboptimal=2 (strategies left out get 0)") from None
SIMILAR_TASKS = 3  # similar_task draws from the instructions nearest to this one (MiniLM cosine)


@dataclass
class Sample:
    """One trajectory view in a pair: frames at chosen cached positions, with targets and masks."""

    frames: np.ndarray
    progress: np.ndarray
    progress_mask: np.ndarray
    success: np.ndarray
    success_mask: np.ndarray


def progress_targets(positions: np.ndarray, start: int, first_success: int) -> np.ndarray:
    """ROBOMETER's target for cached frame i of a segment starting at `start`: (i - start) / (cutoff - start - 1),
    capped at 1, with cutoff = first success + 1 (so the first successful frame has progress 1)."""
    cutoff = first_success + 1
    return np.clip((positions - start) / max(cutoff - start - 1, 1), 0.0, 1.0)


def chosen_segment(rng: np.random.Generator, first_success: int, length: int) -> tuple[int, int]:
    """(start, end) of a random segment of a successful trajectory of `length` cached frames that reaches its first
    success: it starts in the first half before success and ends at or after it."""
    start = int(rng.integers(0, first_success // 2 + 1))
    return start, int(rng.integers(max(first_success, start + 1), length))


def spread(start: int, end: int, num_frames: int) -> np.ndarray:
    """num_frames cached positions linspace-sampled over [start, end]."""
    return np.round(np.linspace(start, end, num_frames)).astype(int)


def reworded(rng: np.random.Generator, instruction: str, paraphrases: dict[str, tuple[str, ...]]) -> str:
    """One of the instruction's paraphrases half the time (a draw only where it has some), else the instruction."""
    others = paraphrases.get(instruction, ())
    if others and rng.random() < 0.5:
        return others[int(rng.integers(len(others)))]
    return instruction


class PairSampler:
    """Draws pair batches from trajectories grouped by instruction; deterministic for a seed."""

    def __init__(self, trajectories: list[Trajectory], num_frames: int, ratios: dict[str, float], seed: int, paraphrases: dict[str, tuple[str, ...]] | None = None):
        self.num_frames = num_frames
        self.paraphrases = paraphrases or {}  # instruction -> other words for it; a row uses one half the time
        self.rng = np.random.default_rng(seed)
        self.by_instruction: dict[str, dict[str, list[Trajectory]]] = defaultdict(lambda: defaultdict(list))
        for trajectory in trajectories:
            self.by_instruction[trajectory.instruction][trajectory.quality].append(trajectory)
        self.successful = [t for t in trajectories if t.quality == "successful" and len(t.frames) >= 2]
        if not self.successful:
            raise RewardModelError("no successful episodes to train on; the reward model needs successful demonstrations (next.success true early enough)")
        unknown = set(ratios) - set(STRATEGIES)
        if unknown:
            raise RewardModelError(f"unknown pair strategies {sorted(unknown)}; valid: {', '.join(STRATEGIES)}")
        weights = np.array([max(float(ratios.get(s, 0.0)), 0.0) for s in STRATEGIES])
        if weights.sum() <= 0:
            raise RewardModelError("all pair strategy ratios are zero; give at least one a positive ratio")
        self.weights = weights / weights.sum()
        self.similar = self._similar_instructions() if self.weights[STRATEGIES.index("similar_task")] > 0 else {}

    def _similar_instructions(self) -> dict[str, list[str]]:
        """Per instruction, the other instructions nearest in sentence-embedding space: hard negatives such as
        "Open a drawer" vs "Open a door", which uniform other-task draws rarely show."""
        from rewardmodel.text import shared_encoder

        names = sorted(self.by_instruction)
        vectors = shared_encoder().encode(names)
        cosine = (vectors @ vectors.T).fill_diagonal_(-2.0)
        nearest = cosine.argsort(dim=1, descending=True)[:, :SIMILAR_TASKS]
        return {name: [names[j] for j in row.tolist() if j != i] for i, (name, row) in enumerate(zip(names, nearest, strict=True))}

    def _positions(self, start: int, end: int) -> np.ndarray:
        return spread(start, end, self.num_frames)

    def chosen(self, trajectory: Trajectory) -> tuple[Sample, int, int]:
        """A random segment of a successful trajectory that reaches its first success; returns it, start and end."""
        first = trajectory.first_success
        start, end = chosen_segment(self.rng, first, len(trajectory.frames))
        positions = self._positions(start, end)
        target = progress_targets(positions, start, first)
        return self._sample(trajectory, positions, target, True), start, end

    def _sample(self, trajectory: Trajectory, positions: np.ndarray, target: np.ndarray | None, supervise_progress: bool) -> Sample:
        t = self.num_frames
        if target is None:
            target = np.zeros(t)
        # success: 1 where progress reaches the cutoff on supervised trajectories, else the run's own labels
        success = (target >= 1.0).astype(np.float32) if supervise_progress else trajectory.success[positions].astype(np.float32)
        return Sample(
            frames=trajectory.frames[positions],
            progress=target.astype(np.float32),
            progress_mask=np.full(t, supervise_progress),
            success=success,
            success_mask=np.ones(t, dtype=bool),
        )

    def pair(self, strategy: str, trajectory: Trajectory) -> tuple[Sample, Sample] | None:
        """(chosen, rejected) for `strategy`, or None when this trajectory's group cannot provide a rejected one."""
        if strategy == "late_success":
            # A run of the same task that succeeded late (suboptimal), against this one, both over the whole episode
            # as they are scored: the only difference is how soon success came, so the rank and preference losses
            # teach the model to score the slower run lower. Random windows would hide that difference.
            late = self.by_instruction[trajectory.instruction]["suboptimal"]
            if not late:
                return None
            other = late[int(self.rng.integers(len(late)))]
            positions = self._positions(0, len(trajectory.frames) - 1)
            chosen = self._sample(trajectory, positions, progress_targets(positions, 0, trajectory.first_success), True)
            return chosen, self._sample(other, self._positions(0, len(other.frames) - 1), None, False)
        chosen, start, end = self.chosen(trajectory)
        rejected = self.rejected(strategy, trajectory, start, end)
        return None if rejected is None else (chosen, rejected)

    def rejected(self, strategy: str, trajectory: Trajectory, start: int, end: int) -> Sample | None:
        """The rejected trajectory for `strategy`, or None when this trajectory's group cannot provide one."""
        first = trajectory.first_success
        t = self.num_frames
        if strategy == "rewind":
            # forward from start to a turning point, then back: progress rises, then falls
            if end - start < 3 or t < 4:  # needs room to go forward and come back
                return None
            turn = int(self.rng.integers(start + 2, end + 1))
            forward = int(self.rng.integers(2, t - 1))
            back_to = int(self.rng.integers(start, turn))
            positions = np.concatenate([np.round(np.linspace(start, turn, forward)), np.round(np.linspace(turn, back_to, t - forward + 1))[1:]]).astype(int)
            return self._sample(trajectory, positions, progress_targets(positions, start, first), True)
        if strategy == "suboptimal":
            pool = self.by_instruction[trajectory.instruction]
            candidates = pool["suboptimal"] + pool["failure"]
            if not candidates:
                return None
            other = candidates[int(self.rng.integers(len(candidates)))]
            n = len(other.frames)
            lo = int(self.rng.integers(0, max(n // 4, 1)))
            hi = int(self.rng.integers(max(3 * n // 4, lo + 1), n))
            return self._sample(other, self._positions(lo, hi), None, False)
        if strategy in ("different_task", "similar_task"):
            others = self.similar.get(trajectory.instruction, []) if strategy == "similar_task" else [i for i in self.by_instruction if i != trajectory.instruction]
            if not others:
                return None
            group = self.by_instruction[others[int(self.rng.integers(len(others)))]]
            candidates = [t_ for quality in group.values() for t_ in quality]
            other = candidates[int(self.rng.integers(len(candidates)))]
            n = len(other.frames)
            positions = self._positions(int(self.rng.integers(0, max(n // 4, 1))), n - 1)
            return self._sample(other, positions, np.zeros(t), True)  # another task's video: no progress on this one
        if strategy == "reverse":
            positions = self._positions(start, end)[::-1].copy()
            return self._sample(trajectory, positions, progress_targets(positions, start, first), True)
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")

    def batch(self, size: int) -> PairBatch:
        rows = []
        attempts = 0
        while len(rows) < size:
            attempts += 1
            if attempts > 100 * size:
                used = [s for s, w in zip(STRATEGIES, self.weights, strict=True) if w > 0]
                raise RewardModelError(f"the data cannot provide rejected trajectories for {', '.join(used)} (e.g. no second task, no failed runs, or too few frames); add data or change --ratios")
            trajectory = self.successful[int(self.rng.integers(len(self.successful)))]
            strategy = STRATEGIES[int(self.rng.choice(len(STRATEGIES), p=self.weights))]
            pair = self.pair(strategy, trajectory)
            if pair is None:
                continue
            chosen, rejected = pair
            a_is_better = bool(self.rng.random() < 0.5)
            a, b = (chosen, rejected) if a_is_better else (rejected, chosen)
            words = reworded(self.rng, trajectory.instruction, self.paraphrases)  # no draw without paraphrases: runs keep their pairs
            rows.append((a, b, words, a_is_better, strategy, trajectory.instruction))

        def stack(side: int, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
            tensor = torch.from_numpy(np.stack([getattr(row[side], name) for row in rows]))
            return tensor if dtype is None else tensor.to(dtype)

        return PairBatch(
            frames_a=stack(0, "frames"),
            frames_b=stack(1, "frames"),
            instructions=[row[2] for row in rows],
            progress_a=stack(0, "progress", torch.float32),
            progress_b=stack(1, "progress", torch.float32),
            progress_mask_a=stack(0, "progress_mask"),
            progress_mask_b=stack(1, "progress_mask"),
            success_a=stack(0, "success", torch.float32),
            success_b=stack(1, "success", torch.float32),
            success_mask_a=stack(0, "success_mask"),
            success_mask_b=stack(1, "success_mask"),
            a_is_better=torch.tensor([row[3] for row in rows], dtype=torch.float32),
            strategies=[row[4] for row in rows],
            tasks=[row[5] for row in rows],
        )
