"""Shared fixtures: tiny LeRobot datasets built in seconds through the same writer users run (contents in tiny.py)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path

import pytest
from tiny import CAMERAS, TINY_EPISODES, tiny_episode

from curate.lerobot_io import write_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four short episodes, two tasks, two video cameras at 32 px, with next.success and next.reward."""
    root = tmp_path_factory.mktemp("tiny") / "tiny_ds"
    episodes = (tiny_episode(i, *spec) for i, spec in enumerate(TINY_EPISODES))
    return write_dataset(root, episodes, fps=10, camera_keys=CAMERAS)


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reward model trained for two steps on the tiny dataset, saved as `curate rm train` saves it."""
    from curate.rm_data import load_trajectories
    from rewardmodel.config import CurateRewardConfig
    from rewardmodel.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "tiny_rm"
    config = CurateRewardConfig(image_size=16, hidden_dim=32, num_layers=1, num_heads=2, num_frames=4, max_frames=8)
    train(load_trajectories(tiny_dataset, 16), config, TrainConfig(steps=2, batch_size=2))[0].save_pretrained(out)
    return out
