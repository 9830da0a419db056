"""Dense rewards from the shipped reward model in a running MetaWorld env (gymnasium wrapper).

    .venv/bin/python examples/reward_wrapper.py [--task drawer-open] [--steps 150]

Rolls out the scripted expert and uniform random actions with the wrapper on; prints the dense reward as it goes,
when the model detected success (the wrapper's `terminated`; this demo keeps stepping to compare), and when
MetaWorld itself first reported success.
"""

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings

import numpy as np

from policies.metaworld_sim import FastRenderer, expert_policy, make_env, parse_camera, task_descriptions
from rewardmodel.gym_reward import RewardModelWrapper
from rewardmodel.model import load_model


def run(task: str, policy: str, steps: int, seed: int) -> None:
    env = make_env(task)
    renderer = FastRenderer(env, [parse_camera("corner2")], 64)
    wrapped = RewardModelWrapper(env, load_model(None), task_descriptions()[task], render=lambda: renderer.render()["corner2"])
    expert, rng = expert_policy(task), np.random.default_rng(seed)
    env.seed(seed)
    obs, _ = wrapped.reset()
    rewards, env_success_at, detected_at = [], None, None
    for step in range(1, steps + 1):
        action = expert.get_action(obs) if policy == "expert" else rng.uniform(-1, 1, 4)
        obs, reward, terminated, truncated, info = wrapped.step(action)
        rewards.append(reward)
        if info["success"] and env_success_at is None:
            env_success_at = step
        if terminated and detected_at is None:
            detected_at = step
        if truncated:
            break
    curve = " ".join(f"{r:.2f}" for r in rewards[:: max(1, len(rewards) // 10)])
    print(f"{task} {policy:>6}: {len(rewards)} steps, dense reward {curve} | final {rewards[-1]:.2f} | "
          f"model detected success at step {detected_at} | MetaWorld success first at step {env_success_at}")
    renderer.close()
    env.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="drawer-open")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for policy in ("expert", "random"):
            run(args.task, policy, args.steps, args.seed)
