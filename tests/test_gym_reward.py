"""The gymnasium reward wrapper on a real MetaWorld env with a tiny reward model: dense rewards, info, termination."""

from pathlib import Path

import numpy as np
import pytest

from policies.metaworld_sim import FastRenderer, make_env, parse_camera
from rewardmodel.gym_reward import RewardModelWrapper
from rewardmodel.model import load_model


def wrapped_reach(tiny_model: Path, **kwargs) -> tuple[RewardModelWrapper, FastRenderer]:
    env = make_env("reach")
    renderer = FastRenderer(env, [parse_camera("topview")], 32)
    return RewardModelWrapper(env, load_model(tiny_model), "reach the goal", render=lambda: renderer.render()["topview"], **kwargs), renderer


def test_rewards_are_the_models_progress_and_detection_needs_a_window_majority(tiny_model: Path) -> None:
    env, renderer = wrapped_reach(tiny_model, success_threshold=0.0, success_window=3)
    try:
        env.unwrapped.seed(0)
        env.reset()
        outcomes = [env.step(np.zeros(4, np.float32)) for _ in range(3)]
    finally:
        renderer.close()
    for _, reward, _, _, info in outcomes:
        assert 0 <= reward <= 1 and reward == info["rm_progress"] and 0 <= info["rm_success_prob"] <= 1
        assert "env_reward" in info and "success" in info  # the env's own info survives
    # threshold 0: every step counts as a success vote; 2 of a 3-step window is the first majority
    assert [o[2] for o in outcomes] == [False, True, True]
    assert len(env.frames) == 4  # the reset frame and one per step


def test_an_unreachable_threshold_never_terminates_and_bad_settings_are_refused(tiny_model: Path) -> None:
    env, renderer = wrapped_reach(tiny_model, success_threshold=1.0, success_window=1)
    try:
        env.unwrapped.seed(0)
        env.reset()
        probabilities = []
        for _ in range(5):
            _, _, terminated, _, info = env.step(np.zeros(4, np.float32))
            probabilities.append(info["rm_success_prob"])
            assert terminated == (info["rm_success_prob"] >= 1.0)
        assert max(probabilities) < 1.0
    finally:
        renderer.close()
    with pytest.raises(ValueError, match="success_window must be at least 1"):
        wrapped_reach(tiny_model, success_window=0)
