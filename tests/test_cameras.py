"""`curate score --camera all`: every camera scored, combined frame by frame, each camera's numbers kept and reported."""

from pathlib import Path

import numpy as np
from tiny import CAMERAS
from typer.testing import CliRunner

from curate.cli import app
from curate.index import Index

runner = CliRunner()


def rows(index: Path) -> dict:
    with Index(index, read_only=True) as db:
        return {(int(r.episode_index), r.instruction): r for r in db.scores().itertuples()}


def test_all_cameras_are_scored_combined_by_their_maximum_and_reported_each(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    base = ["score", str(tiny_dataset), "--model", str(tiny_model), "--instruction", "press the button"]
    for name, camera in (("all", "all"), ("front", "front"), ("side", "side")):
        result = runner.invoke(app, [*base, "--camera", camera, "--index", str(tmp_path / f"{name}.duckdb")])
        assert result.exit_code == 0, result.output
    both, front, side = rows(tmp_path / "all.duckdb"), rows(tmp_path / "front.duckdb"), rows(tmp_path / "side.duckdb")
    assert both.keys() == front.keys() == side.keys() and len(both) == 6  # 4 episodes under their task, the 2 drawer ones also under the button
    for key, row in both.items():
        np.testing.assert_allclose(row.frame_progress, np.maximum(front[key].frame_progress, side[key].frame_progress), atol=1e-6)
        np.testing.assert_allclose(row.frame_success, np.maximum(front[key].frame_success, side[key].frame_success), atol=1e-6)
        assert abs(row.final_progress - max(front[key].final_progress, side[key].final_progress)) < 1e-6
    with Index(tmp_path / "all.duckdb", read_only=True) as db:
        cameras = db.camera_scores()
    assert len(cameras) == 12 and set(cameras["camera"]) == set(CAMERAS)
    for r in cameras.itertuples():
        alone = (front if r.camera == CAMERAS[0] else side)[(int(r.episode_index), r.instruction)]
        assert abs(r.final_progress - alone.final_progress) < 1e-6 and np.allclose(r.frame_progress, alone.frame_progress, atol=1e-6)

    report = runner.invoke(app, ["report", "--index", str(tmp_path / "all.duckdb"), "--instruction", "press the button", "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "r.html").read_text()
    top = max((r for (e, i), r in both.items() if i == "press the button"), key=lambda r: r.final_progress)
    key = (int(top.episode_index), "press the button")
    assert f"by camera: front {front[key].final_progress:.2f} / side {side[key].final_progress:.2f}" in page
    assert "<th>final progress by camera</th>" in page

    again = runner.invoke(app, [*base, "--camera", "all", "--index", str(tmp_path / "all.duckdb")])
    assert again.exit_code == 0 and "already in the index 6" in again.output  # resumable
    one = runner.invoke(app, [*base, "--camera", "front", "--index", str(tmp_path / "all.duckdb")])
    assert one.exit_code == 2 and f"from camera {CAMERAS[0]}+{CAMERAS[1]} with 8 sampled frames, not {CAMERAS[0]}" in one.output
    rescored = runner.invoke(app, [*base, "--camera", "front", "--rescore", "--index", str(tmp_path / "all.duckdb")])
    assert rescored.exit_code == 0, rescored.output
    with Index(tmp_path / "all.duckdb", read_only=True) as db:
        assert db.camera_scores().empty  # a rescore with one camera leaves no stale per-camera rows

    dense = runner.invoke(app, [*base, "--camera", "all", "--stride", "3", "--index", str(tmp_path / "dense.duckdb")])
    assert dense.exit_code == 0, dense.output
    assert list(rows(tmp_path / "dense.duckdb")[(1, "open the drawer")].frame_index) == [0, 3, 6, 9, 11]
