"""Behaviour cloning: trains on a LeRobot dataset through `curate bc train`, rolls out in MetaWorld via `bc eval`."""

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from curate.cli import app
from curate.datagen import DatagenConfig, generate
from policies.bc import BCConfig, train_bc

runner = CliRunner()


def test_train_bc_fits_a_linear_map_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    states = rng.normal(size=(512, 5)).astype(np.float32)
    actions = np.tanh(states[:, :2] * 0.5)
    config = BCConfig(hidden=32, layers=2, steps=300, batch_size=64, lr=3e-3)
    policy, losses = train_bc(states, actions, states.mean(0), states.std(0), config)
    again, _ = train_bc(states, actions, states.mean(0), states.std(0), config)
    assert losses[-1] < 0.1 * losses[0]
    assert np.allclose(policy.act(states[0]), again.act(states[0]))


def test_bc_train_and_eval_on_metaworld(tmp_path: Path) -> None:
    data = tmp_path / "reach"
    generate(DatagenConfig(out=data, tasks=("reach",), episodes_per_task=2, recipes=("expert",), size=32, steps=60, stride=1, cameras=("corner2",)))
    result = runner.invoke(app, ["bc", "train", str(data), "--out", str(tmp_path / "policy"), "--steps", "50", "--batch-size", "32", "--hidden", "32"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "policy" / "policy.json").read_text())
    assert meta["frames"] == 120 and meta["episodes"] == 2 and meta["state_dim"] == 39 and meta["action_dim"] == 4
    result = runner.invoke(app, ["bc", "eval", str(tmp_path / "policy"), "--task", "reach", "--episodes", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["seeds"] == [10000, 10001] and report["errors"] == [] and report["success_rate"] in (0.0, 0.5, 1.0)


def test_bc_bad_input_is_one_clear_line(tiny_dataset: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bc", "eval", str(tmp_path), "--task", "reach"])
    assert result.exit_code == 2 and "is not a policy folder" in result.output
    result = runner.invoke(app, ["bc", "train", str(tiny_dataset), "--out", str(tmp_path / "p"), "--steps", "2"])
    assert result.exit_code == 0, result.output  # any state/action widths train
    result = runner.invoke(app, ["bc", "eval", str(tmp_path / "p"), "--task", "reachh"])
    assert result.exit_code == 2 and "unknown MetaWorld task 'reachh'" in result.output


def test_a_dataset_without_state_is_refused(tmp_path: Path) -> None:
    from curate.lerobot_io import write_dataset
    from curate.records import EpisodeData

    episode = EpisodeData("push", {"action": np.zeros((3, 4), np.float32), "observation.images.top": np.full((3, 32, 32, 3), 90, np.uint8)})
    root = write_dataset(tmp_path / "nostate", [episode], fps=10, camera_keys=["observation.images.top"])
    result = runner.invoke(app, ["bc", "train", str(root), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "has no observation.state; it has:" in result.output
    assert not (tmp_path / "p").exists()
