"""Rolls a policy out in MetaWorld for seeded episodes and reports its success rate (no rendering needed)."""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from policies.metaworld_sim import check_task, make_env


@dataclass(frozen=True)
class EvalResult:
    task: str
    seeds: tuple[int, ...]
    successes: tuple[bool, ...]  # ever succeeded, per seed
    errors: tuple[str, ...]  # per seed: "" or why the rollout failed

    @property
    def success_rate(self) -> float:
        ok = [s for s, e in zip(self.successes, self.errors, strict=True) if not e]
        return float(np.mean(ok)) if ok else float("nan")


def evaluate_policy(act: Callable[[np.ndarray], np.ndarray], task: str, episodes: int, seed: int = 10_000, steps: int = 200) -> EvalResult:
    """Success = the env reported success at any step ("ever succeeded"), as the dataset labels are defined."""
    task = check_task(task)
    env = make_env(task)
    seeds, successes, errors = [], [], []
    try:
        for episode in range(episodes):
            episode_seed = seed + episode
            seeds.append(episode_seed)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    env.seed(episode_seed)
                    obs, _ = env.reset()
                    succeeded = False
                    for _ in range(steps):
                        obs, _, _, truncated, info = env.step(np.clip(act(obs.astype(np.float32)), -1, 1))
                        succeeded |= bool(info["success"])
                        if succeeded or truncated:
                            break
                successes.append(succeeded)
                errors.append("")
            except Exception as err:  # a simulator error is reported per seed, never silently dropped
                successes.append(False)
                errors.append(f"{type(err).__name__}: {err}")
    finally:
        env.close()
    return EvalResult(task, tuple(seeds), tuple(successes), tuple(errors))
