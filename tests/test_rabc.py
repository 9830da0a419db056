"""`curate weights` writes lerobot's RA-BC progress parquet; lerobot's own weighter and lerobot-train read it."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from tiny import FINALS, TINY_EPISODES, known_index
from typer.testing import CliRunner

from curate.cli import app


def write_weights(tiny_dataset: Path, tmp_path: Path) -> Path:
    index = known_index(tmp_path / "k.duckdb", tiny_dataset)
    result = CliRunner().invoke(app, ["weights", str(tiny_dataset), "--instruction", "do the task", "--index", str(index), "--out", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    return tmp_path / "w" / "progress.parquet"


def test_weights_hold_every_frames_interpolated_progress_in_lerobots_schema(tiny_dataset: Path, tmp_path: Path) -> None:
    path = write_weights(tiny_dataset, tmp_path)
    table = pq.read_table(path)
    assert table.column_names == ["index", "episode_index", "frame_index", "progress_sparse"]
    assert table.schema.metadata[b"reward_model_path"] == b"m@1"
    lengths = [n for _, n, _ in TINY_EPISODES]
    assert table.column("index").to_pylist() == list(range(sum(lengths)))
    progress = table.column("progress_sparse").to_numpy()
    start = 0
    for episode, length in enumerate(lengths):  # the index scored frames 0 and 5: 0.1 then the final progress
        expected = np.interp(np.arange(length), [0, 5], [0.1, FINALS[episode]])
        np.testing.assert_allclose(progress[start : start + length], expected, rtol=1e-6)
        start += length

    from lerobot.rewards.sarm.rabc import RABCWeights

    weighter = RABCWeights(progress_path=path, chunk_size=2, device="cpu")
    weights, _ = weighter.compute_batch_weights({"index": np.arange(sum(lengths))})
    assert weights.min() < weights.max()  # frames that make progress count more than those that do not


def test_unscored_episodes_are_named_and_nothing_is_written(tiny_dataset: Path, tmp_path: Path) -> None:
    index = known_index(tmp_path / "k.duckdb", tiny_dataset, instruction="do the task")
    result = CliRunner().invoke(app, ["weights", str(tiny_dataset), "--index", str(index), "--out", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "4 of 4 episodes (first: 0) have no scores under their own task" in result.output
    assert not (tmp_path / "w").exists()


def test_bc_train_weights_each_frame_by_the_progress_it_makes(tiny_dataset: Path, tmp_path: Path) -> None:
    """lerobot 0.6.1's lerobot-train applies RA-BC only to policies whose forward takes `reduction` (pi0, pi05, evo1:
    pretrained VLAs); `curate bc train --weights` applies lerobot's same weighter to the MLP policy."""
    path = write_weights(tiny_dataset, tmp_path)
    args = ["bc", "train", str(tiny_dataset), "--out", str(tmp_path / "p"), "--steps", "3", "--batch-size", "8", "--hidden", "16", "--layers", "1"]
    result = CliRunner().invoke(app, [*args, "--weights", str(path), "--horizon", "2"])
    assert result.exit_code == 0, result.output
    weights = json.loads((tmp_path / "p" / "policy.json").read_text())["weights"]
    assert weights["horizon"] == 2 and weights["min"] < 0.5 * weights["max"]  # frames past the last rise make no progress: low weight
    assert weights["mean"] == pytest.approx(1.0, abs=1e-3)  # lerobot normalises the weights to mean 1
    other = CliRunner().invoke(app, [*args[:3], "--out", str(tmp_path / "q"), "--weights", str(tmp_path / "nope.parquet")])
    assert other.exit_code == 2 and "does not exist; write it with `curate weights" in other.output
    subset = tmp_path / "subset"  # another dataset whose frame indices would line up with the parquet's
    assert CliRunner().invoke(app, ["filter", "--index", str(tmp_path / "k.duckdb"), "--instruction", "do the task", "--top-k", "2", "--out", str(subset)]).exit_code == 0
    foreign = CliRunner().invoke(app, ["bc", "train", str(subset), "--out", str(tmp_path / "r"), "--steps", "1", "--weights", str(path)])
    assert foreign.exit_code == 2 and "was written for another dataset" in foreign.output
    assert not (tmp_path / "r").exists()
