"""`curate score --stride`: dense per-frame scores through K-frame grids, each frame encoded once."""

from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
from tiny import TINY_EPISODES
from typer.testing import CliRunner

from curate.cli import app
from curate.index import Index
from curate.sampling import dense_plan, frame_indices, prefix_grid

runner = CliRunner()


def test_a_frames_grid_is_the_sample_shifted_to_end_at_it() -> None:
    sample = frame_indices(50, 8)  # 0, 7, 14, ..., 49
    assert prefix_grid(50, 8, 14).tolist() == [0, 7, 14]  # a sampled frame: its prefix of the sample
    assert prefix_grid(50, 8, 17).tolist() == [3, 10, 17]  # between: the same spacing, shifted
    assert prefix_grid(50, 8, 5).tolist() == [5]
    plan = dense_plan(50, 8, 4)
    assert plan.targets.tolist() == [*range(0, 50, 4), 49]
    assert plan.needed[plan.grids[-1]].tolist() == sample.tolist()  # the last grid is the whole sample
    assert all(plan.needed[g][-1] == t for g, t in zip(plan.grids, plan.targets, strict=True))
    short = dense_plan(5, 8, 10)  # a stride longer than the episode: its first and last frame
    assert short.targets.tolist() == [0, 4]


def scores(index: Path, instruction: str) -> dict:
    with Index(index, read_only=True) as db:
        return {int(r.episode_index): r for r in db.scores(instruction).itertuples()}


def test_dense_scores_agree_with_sampled_scores_on_the_sampled_frames(tiny_dataset: Path, tmp_path: Path) -> None:
    common = [str(tiny_dataset), "--instruction", "press the button"]  # the shipped model: it has a match head
    sampled = runner.invoke(app, ["score", *common, "--index", str(tmp_path / "s.duckdb")])
    dense = runner.invoke(app, ["score", *common, "--index", str(tmp_path / "d.duckdb"), "--stride", "1"])
    assert sampled.exit_code == 0 and dense.exit_code == 0, sampled.output + dense.output
    for instruction in ("open the drawer", "press the button"):
        by_sampled, by_dense = scores(tmp_path / "s.duckdb", instruction), scores(tmp_path / "d.duckdb", instruction)
        assert by_sampled.keys() == by_dense.keys() and by_dense
        for episode, d in by_dense.items():
            s = by_sampled[episode]
            assert list(d.frame_index) == list(range(TINY_EPISODES[episode][1]))  # every frame
            at = [list(d.frame_index).index(i) for i in s.frame_index]
            np.testing.assert_allclose(np.array(d.frame_progress)[at], s.frame_progress, atol=1e-5)
            np.testing.assert_allclose(np.array(d.frame_success)[at], s.frame_success, atol=1e-5)
            assert abs(d.final_progress - s.final_progress) < 1e-5 and abs(d.match_prob - s.match_prob) < 1e-5
    db = duckdb.connect(str(tmp_path / "d.duckdb"), read_only=True)
    assert db.execute("SELECT DISTINCT frames, stride FROM runs").fetchall() == [(8, 1)]
    db.close()
    # the RA-BC parquet of dense scores holds each frame's own progress, nothing interpolated
    weights = runner.invoke(app, ["weights", str(tiny_dataset), "--index", str(tmp_path / "d.duckdb"), "--model", next(iter(scores(tmp_path / "d.duckdb", "open the drawer").values())).model, "--out", str(tmp_path / "w")])
    assert weights.exit_code == 0, weights.output
    progress = pq.read_table(tmp_path / "w" / "progress.parquet").column("progress_sparse").to_numpy()
    first = TINY_EPISODES[0][1]
    np.testing.assert_allclose(progress[:first], scores(tmp_path / "d.duckdb", "open the drawer")[0].frame_progress, rtol=1e-6)


def test_dense_and_sampled_scores_do_not_mix_and_a_bad_stride_is_refused(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "i.duckdb")
    base = ["score", str(tiny_dataset), "--model", str(tiny_model), "--index", index]
    assert runner.invoke(app, base).exit_code == 0
    again = runner.invoke(app, [*base, "--stride", "2"])
    assert again.exit_code == 2 and "from camera observation.images.front with 8 sampled frames, not observation.images.front with dense scores (every 2 frames, 8-frame grids); pass --rescore" in again.output
    rescored = runner.invoke(app, [*base, "--stride", "2", "--rescore"])
    assert rescored.exit_code == 0, rescored.output
    assert list(scores(Path(index), "open the drawer")[1].frame_index) == [0, 2, 4, 6, 8, 10, 11]
    assert runner.invoke(app, [*base, "--stride", "2"]).output.count("already in the index 4") == 1  # resumable
    zero = runner.invoke(app, [*base, "--stride", "0"])
    assert zero.exit_code == 2 and "--stride must be at least 1 (1: every frame), got 0" in zero.output
