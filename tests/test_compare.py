"""`curate compare` end to end at toy sizes: pool, scoring, selections, BC, rollouts, results and chart."""

import json
from pathlib import Path

from typer.testing import CliRunner

from curate.cli import app


def test_compare_runs_every_method_and_writes_results(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "--tasks", "reach,button-press", "--out", str(out), "--k", "2", "--seeds", "1", "--pool-episodes", "2",
            "--model", str(tiny_model), "--siglip-steps", "3", "--bc-steps", "5", "--eval-episodes", "1", "--steps", "80", "--json", str(tmp_path / "r.json")]
    result = CliRunner().invoke(app, [*args, "--workers", "2"])  # BC runs in two processes
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "r.json").read_text())
    assert set(results["tasks"]) == {"reach", "button-press"}
    for by_method in results["tasks"].values():
        assert set(by_method) == {"reward_model", "reward_model_trimmed", "reward_weighted", "pool", "siglip", "random", "all", "oracle"}
        assert by_method["oracle"]["precision"] == 1.0  # the oracle picks true successes only
        assert by_method["reward_weighted"]["precision"] is None  # it weights the whole pool, selects nothing
        assert all(0 <= m["success_mean"] <= 1 and (m["precision"] is None or 0 <= m["precision"] <= 1) for m in by_method.values())
    assert (out / "compare.png").stat().st_size > 1000
    page = (out / "compare.html").read_text()
    assert "data:image/png;base64," in page and page.count("<tr>") == 1 + 2 and "p 1.00" in page  # header + 2 tasks; the oracle
    full = json.loads((out / "results.json").read_text())
    assert full["tasks"]["reach"]["all"]["selected"] == 2  # both pool episodes of the task
    pool_tasks = ("reach", "button-press", "button-press-topdown", "button-press-wall")  # button-press brings its look-alikes
    assert full["tasks"]["reach"]["reward_weighted"]["selected"] == full["tasks"]["reach"]["pool"]["selected"] == 2 * len(pool_tasks)
    assert full["tasks"]["reach"]["reward_model_trimmed"]["frames"] <= full["tasks"]["reach"]["reward_model"]["frames"]
    assert (out / "weights" / "reach" / "progress.parquet").is_file()
    assert full["tasks"]["reach"]["siglip"]["selected"] == 2 and full["siglip"].startswith("siglip:siglip@")
    assert (out / "compare.faiss").is_dir()  # the frame vectors beside the compare index

    # every BC run is kept (methods that chose the same episodes share one); a rerun (in this process) trains nothing
    # and agrees
    runs = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert 2 <= len(runs) <= 14
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")} == runs
    assert json.loads((tmp_path / "r.json").read_text())["tasks"] == results["tasks"]


def test_compare_rejects_k_larger_than_the_pool(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", "--tasks", "drawer-open", "--out", str(tmp_path), "--k", "30", "--pool-episodes", "4"])
    assert result.exit_code == 2 and "--k 30 is larger than the pool (8 episodes)" in result.output  # with drawer-close
