"""Reward alignment metrics as in ROBOMETER: VOC, Kendall tau-a over qualities, success-failure gap, failure F1."""

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from rewardmodel.records import QUALITIES

QUALITY_RANK = {quality: rank for rank, quality in enumerate(QUALITIES)}


@dataclass(frozen=True, eq=False)
class ScoredTrajectory:
    """A model's per-frame predictions for one trajectory, with its ground truth."""

    task: str
    quality: str
    progress: np.ndarray  # (K,) predicted progress at the scored frames
    success_prob: np.ndarray  # (K,)
    true_progress: np.ndarray | None  # (K,) targets, for successful trajectories


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; 0 where either side is constant (no order to agree with)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() < 1e-9 or y.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def voc(scored: list[ScoredTrajectory]) -> float:
    """Value-order correlation: Pearson of predicted vs true progress per successful trajectory, averaged."""
    values = [pearson(s.progress, s.true_progress) for s in scored if s.quality == "successful" and s.true_progress is not None]
    return float(np.mean(values)) if values else float("nan")


def kendall_tau_a(scores: list[float], ranks: list[int]) -> float:
    """Kendall tau-a: (concordant - discordant) / (n (n - 1) / 2); ties in either count as zero."""
    n = len(scores)
    total = 0.0
    for i, j in itertools.combinations(range(n), 2):
        total += np.sign(scores[i] - scores[j]) * np.sign(ranks[i] - ranks[j])
    return float(total / (n * (n - 1) / 2))


def kendall_by_quality(scored: list[ScoredTrajectory], max_combinations: int = 2000, seed: int = 0) -> float:
    """Per task, tau-a of final progress over every combination of one trajectory per quality present (failure <
    suboptimal < successful), averaged over combinations, then over tasks. Large tasks are subsampled."""
    rng = np.random.default_rng(seed)
    per_task = []
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in scored:
        groups[s.task][s.quality].append(float(s.progress[-1]))
    for qualities in groups.values():
        present = sorted(qualities, key=QUALITY_RANK.get)
        if len(present) < 2:
            continue
        ranks = [QUALITY_RANK[q] for q in present]
        pools = [qualities[q] for q in present]
        count = int(np.prod([len(p) for p in pools]))
        if count <= max_combinations:
            combos = itertools.product(*pools)
        else:
            combos = ([p[rng.integers(len(p))] for p in pools] for _ in range(max_combinations))
        per_task.append(np.mean([kendall_tau_a(list(c), ranks) for c in combos]))
    return float(np.mean(per_task)) if per_task else float("nan")


def success_failure_gap(scored: list[ScoredTrajectory]) -> float:
    """Mean final progress of successful trajectories minus that of failures."""
    good = [s.progress[-1] for s in scored if s.quality == "successful"]
    bad = [s.progress[-1] for s in scored if s.quality == "failure"]
    return float(np.mean(good) - np.mean(bad)) if good and bad else float("nan")


def failure_f1(scored: list[ScoredTrajectory], threshold: float = 0.5) -> float:
    """F1 of detecting failures: a trajectory is called a failure when no frame's success probability reaches
    `threshold`."""
    return f1_of_failures(np.array([s.success_prob.max() < threshold for s in scored]), np.array([s.quality == "failure" for s in scored]))


def f1_of_failures(predicted: np.ndarray, actual: np.ndarray) -> float:
    """F1 of bool arrays: called a failure, and was one."""
    tp = float((predicted & actual).sum())
    precision = tp / max(predicted.sum(), 1)
    recall = tp / max(actual.sum(), 1)
    return 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """How often a positive scores above a negative, ties counting half."""
    p, n = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def alignment_metrics(scored: list[ScoredTrajectory]) -> dict[str, float]:
    return {
        "voc": voc(scored),
        "kendall_tau_a": kendall_by_quality(scored),
        "succ_fail_gap": success_failure_gap(scored),
        "failure_f1": failure_f1(scored),
        "episodes": float(len(scored)),
    }
