"""Scores trajectories with a reward model and computes alignment metrics and preference accuracy."""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from rewardmodel.metrics import ScoredTrajectory, alignment_metrics, roc_auc
from rewardmodel.pairs import progress_targets
from rewardmodel.records import Trajectory

# Any scorer: (frames (B, K, H, W, 3) uint8, instructions) -> (progress (B, K), success probability (B, K)).
Scorer = Callable[[torch.Tensor, list[str]], tuple[torch.Tensor, torch.Tensor]]


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """k positions spread evenly over 0..n-1, ending on the last frame."""
    if min(k, n) == 1:
        return np.array([n - 1])
    return np.unique(np.round(np.linspace(0, n - 1, min(k, n))).astype(int))


@torch.inference_mode()
def score_trajectories(scorer: Scorer, trajectories: list[Trajectory], num_frames: int, batch_size: int = 32) -> list[ScoredTrajectory]:
    """Predictions at `num_frames` evenly spaced frames of each whole trajectory, with true progress for successes."""
    by_count: dict[int, list[int]] = defaultdict(list)  # batch trajectories that give the same number of frames
    positions = [evenly_spaced(len(t.frames), num_frames) for t in trajectories]
    for i, p in enumerate(positions):
        by_count[len(p)].append(i)
    results: dict[int, ScoredTrajectory] = {}
    for members in by_count.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            frames = torch.from_numpy(np.stack([trajectories[i].frames[positions[i]] for i in chunk]))
            progress, success = scorer(frames, [trajectories[i].instruction for i in chunk])
            for row, i in enumerate(chunk):
                t = trajectories[i]
                truth = progress_targets(positions[i], 0, t.first_success) if t.quality == "successful" else None
                results[i] = ScoredTrajectory(t.instruction, t.quality, progress[row].cpu().numpy(), success[row].cpu().numpy(), truth)
    return [results[i] for i in range(len(trajectories))]


def instruction_auc(scorer: Scorer, trajectories: list[Trajectory], num_frames: int) -> float:
    """Does an instruction pick out its own task? Every successful trajectory is scored under every task's
    instruction; per instruction, the ROC AUC of final progress between its own task's successes and the other
    tasks' successes; averaged over instructions. Ranking mixed play data under one instruction relies on it; the
    other metrics only ever score a trajectory under its own instruction."""
    successes = [t for t in trajectories if t.quality == "successful"]
    tasks = sorted({t.instruction for t in successes})
    if len(tasks) < 2:
        return float("nan")
    own_task = np.array([t.instruction for t in successes])
    per_instruction = []
    for instruction in tasks:
        scored = score_trajectories(scorer, [replace(t, instruction=instruction) for t in successes], num_frames)
        final = np.array([s.progress[-1] for s in scored])
        per_instruction.append(roc_auc(final[own_task == instruction], final[own_task != instruction]))
    return float(np.mean(per_instruction))


@torch.inference_mode()
def preference_accuracy(model, trajectories: list[Trajectory], num_frames: int, max_pairs: int = 256, seed: int = 0) -> float:
    """How often the preference head prefers a successful trajectory over a failure of the same task (both orders)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, dict[str, list[Trajectory]]] = defaultdict(lambda: defaultdict(list))
    for t in trajectories:
        groups[t.instruction][t.quality].append(t)
    pairs = [(g, b) for q in groups.values() for g in q["successful"] for b in q["failure"]]
    if not pairs:
        return float("nan")
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:max_pairs]]
    correct = 0
    for good, bad in pairs:
        a = torch.from_numpy(good.frames[evenly_spaced(len(good.frames), num_frames)][None])
        b = torch.from_numpy(bad.frames[evenly_spaced(len(bad.frames), num_frames)][None])
        if a.shape != b.shape:
            continue
        p_ab = model.preference_probability(a, b, [good.instruction])[0]
        p_ba = model.preference_probability(b, a, [good.instruction])[0]
        correct += int(p_ab > 0.5) + int(p_ba < 0.5)
    return correct / (2 * len(pairs))


def evaluate(model, trajectories: list[Trajectory], num_frames: int) -> dict[str, float]:
    """Alignment metrics by final progress and success probability, plus preference accuracy."""
    metrics = alignment_metrics(score_trajectories(model.predict, trajectories, num_frames))
    metrics["preference_accuracy"] = preference_accuracy(model, trajectories, num_frames)
    return metrics
