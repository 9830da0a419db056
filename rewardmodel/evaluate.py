"""Scores trajectories with a reward model and computes alignment metrics and preference accuracy."""

from collections import defaultdict
from collections.abc import Callable, Iterator

import numpy as np
import torch

from rewardmodel.metrics import ScoredTrajectory, alignment_metrics, roc_auc
from rewardmodel.pairs import progress_targets
from rewardmodel.records import Trajectory

# Any scorer: (frames (B, K, H, W, 3) uint8, instructions) -> (progress (B, K), success probability (B, K)).
PredictFn = Callable[[torch.Tensor, list[str]], tuple[torch.Tensor, torch.Tensor]]  # frames, instructions -> progress, success


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """k positions spread evenly over 0..n-1, ending on the last frame."""
    if min(k, n) == 1:
        return np.array([n - 1])
    return np.unique(np.round(np.linspace(0, n - 1, min(k, n))).astype(int))


def batches(trajectories: list[Trajectory], num_frames: int, batch_size: int) -> Iterator[tuple[list[int], torch.Tensor, list[np.ndarray]]]:
    """(trajectory indices, their frames (B, K, H, W, 3), each one's positions) at `num_frames` evenly spaced frames,
    in batches of trajectories that give the same number of frames."""
    positions = [evenly_spaced(len(t.frames), num_frames) for t in trajectories]
    by_count: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(positions):
        by_count[len(p)].append(i)
    for members in by_count.values():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            yield chunk, torch.from_numpy(np.stack([trajectories[i].frames[positions[i]] for i in chunk])), [positions[i] for i in chunk]


@torch.inference_mode()
def score_trajectories(scorer: PredictFn, trajectories: list[Trajectory], num_frames: int, batch_size: int = 32) -> list[ScoredTrajectory]:
    """Predictions at `num_frames` evenly spaced frames of each whole trajectory, with true progress for successes."""
    results: dict[int, ScoredTrajectory] = {}
    for chunk, frames, positions in batches(trajectories, num_frames, batch_size):
        progress, success = scorer(frames, [trajectories[i].instruction for i in chunk])
        for row, (i, p) in enumerate(zip(chunk, positions, strict=True)):
            t = trajectories[i]
            truth = progress_targets(p, 0, t.first_success) if t.quality == "successful" else None
            results[i] = ScoredTrajectory(t.instruction, t.quality, progress[row].cpu().numpy(), success[row].cpu().numpy(), truth)
    return [results[i] for i in range(len(trajectories))]


# Any selector: (frames (B, K, H, W, 3) uint8, instructions) -> (B,) how strongly to select each trajectory under its
# instruction (the reward model: final progress x match probability, the rule curate rank and filter use).
Selector = Callable[[torch.Tensor, list[str]], torch.Tensor]


def final_progress_selector(scorer: PredictFn) -> Selector:
    """Select by final progress alone (scorers without a match head)."""
    return lambda frames, instructions: scorer(frames, instructions)[0][:, -1]


@torch.inference_mode()
def select_scores(selector: Selector, trajectories: list[Trajectory], instruction: str, num_frames: int, batch_size: int = 64) -> np.ndarray:
    """Every trajectory's selection score under one instruction, (N,)."""
    out = np.zeros(len(trajectories))
    for chunk, frames, _ in batches(trajectories, num_frames, batch_size):
        out[chunk] = selector(frames, [instruction] * len(chunk)).float().cpu().numpy()
    return out


def instruction_auc(selector: Selector, trajectories: list[Trajectory], num_frames: int, phrasings: dict[str, tuple[str, ...]] | None = None) -> float:
    """Does an instruction pick out its own task? Every successful trajectory is scored under every task's
    instruction (or, with `phrasings`, under each of its other wordings); per instruction, the ROC AUC of the
    selection score between its own task's successes and the other tasks' successes; averaged. Ranking mixed play
    data under one instruction relies on it; the other metrics only score a trajectory under its own instruction."""
    successes = [t for t in trajectories if t.quality == "successful"]
    tasks = sorted({t.instruction for t in successes})
    if len(tasks) < 2:
        return float("nan")
    own_task = np.array([t.instruction for t in successes])
    per_instruction = []
    for task in tasks:
        for words in (phrasings or {}).get(task, ()) if phrasings is not None else (task,):
            score = select_scores(selector, successes, words, num_frames)
            per_instruction.append(roc_auc(score[own_task == task], score[own_task != task]))
    return float(np.mean(per_instruction)) if per_instruction else float("nan")


def top_k_precision(selector: Selector, trajectories: list[Trajectory], num_frames: int, k: int = 5, phrasings: dict[str, tuple[str, ...]] | None = None) -> float:
    """What `curate filter --instruction X --top-k K` exports from mixed play data: per task that succeeded at least
    once, every trajectory of the pool (all tasks, all qualities) is scored under the task's instruction (or each of
    its `phrasings`); the share of the best min(K, its runs that succeeded) that are runs of that task that succeeded
    (so 1 is reachable when a task has fewer than K); averaged."""
    return top_k_breakdown(selector, trajectories, num_frames, k, phrasings)["right"]


def top_k_breakdown(selector: Selector, trajectories: list[Trajectory], num_frames: int, k: int = 5, phrasings: dict[str, tuple[str, ...]] | None = None) -> dict[str, float]:
    """`top_k_precision`'s picks sorted into their three kinds, each a share averaged as it is: "right" (a run of the
    task that succeeded: the precision), "failed" (a failed run of the task) and "other task" (any run of another)."""
    tasks = np.array([t.instruction for t in trajectories])
    succeeded = np.array([t.quality != "failure" for t in trajectories])
    shares = []
    for task in sorted(set(tasks)):
        cut = min(k, int((succeeded & (tasks == task)).sum()))
        if cut == 0:
            continue
        for words in (phrasings or {}).get(task, ()) if phrasings is not None else (task,):
            best = np.argsort(-select_scores(selector, trajectories, words, num_frames), kind="stable")[:cut]
            own = tasks[best] == task
            shares.append((np.mean(succeeded[best] & own), np.mean(~succeeded[best] & own), np.mean(~own)))
    if not shares:
        return dict.fromkeys(("right", "failed", "other task"), float("nan"))
    return dict(zip(("right", "failed", "other task"), (float(x) for x in np.mean(shares, 0)), strict=True))


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
