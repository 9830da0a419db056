"""`curate score --engine ray` on a local Ray (ray.init(num_cpus=2)): the same rows as the local engine, a worker
killed mid-run fails clearly and the rerun finishes without duplicates, an unreachable cluster fails fast."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.index import Index
from curate.scoring import ScoreConfig, prepare, score_dataset

ray = pytest.importorskip("ray")

INSTRUCTION = "open the drawer"
ALL_ROWS = [(0, "open the drawer"), (1, "open the drawer"), (2, "open the drawer"), (2, "press the button"), (3, "open the drawer"), (3, "press the button")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def score(dataset: Path, model: Path, index: Path, engine: str, on_progress=None, workers: int = 2):
    config = ScoreConfig(str(dataset), index=index, model=str(model), instructions=(INSTRUCTION,), frames=4, batch_size=1, engine=engine, workers=workers)
    return score_dataset(prepare(config), on_progress)


def rows(index: Path) -> list[tuple]:
    with Index(index, read_only=True) as db:
        table = db.scores()
    return sorted(zip(table["episode_index"], table["instruction"], table["final_progress"], table["success_prob"]))


def test_ray_actors_write_the_same_rows_as_the_local_engine(tiny_dataset: Path, tiny_model: Path, tmp_path: Path, local_ray) -> None:
    local = score(tiny_dataset, tiny_model, tmp_path / "local.duckdb", "local")
    remote = score(tiny_dataset, tiny_model, tmp_path / "ray.duckdb", "ray")
    assert (local.scored, remote.scored, remote.failed) == (6, 6, [])
    expected, got = rows(tmp_path / "local.duckdb"), rows(tmp_path / "ray.duckdb")
    assert [r[:2] for r in got] == [r[:2] for r in expected] == ALL_ROWS
    for a, b in zip(expected, got):
        assert b[2:] == pytest.approx(a[2:], abs=1e-5)
    assert ray.is_initialized()  # a Ray the caller started is left running


def test_a_worker_killed_mid_run_fails_clearly_and_the_rerun_finishes_without_duplicates(tiny_dataset: Path, tiny_model: Path, tmp_path: Path, local_ray) -> None:
    index = tmp_path / "i.duckdb"

    def kill_after_first_batch(done: int, total: int) -> None:
        # one actor, batches of one episode: the batches sent after this go to a dead actor. ray.kill returns before
        # the actor is gone, and a call sent meanwhile may still run, so wait until a call fails: only then is it dead.
        if done == 1:
            actor = ray.get_actor("curate-scorer-0")
            ray.kill(actor, no_restart=True)
            for _ in range(600):
                try:
                    ray.get(actor.__ray_ready__.remote(), timeout=60)
                except ray.exceptions.RayActorError:
                    return
                time.sleep(0.1)
            raise AssertionError("the killed actor still answers after a minute")

    with pytest.raises(CurateError, match="a Ray worker died while scoring.*run the same command again"):
        score(tiny_dataset, tiny_model, index, "ray", kill_after_first_batch, workers=1)
    written = rows(index)
    assert 1 <= len(written) < len(ALL_ROWS)
    rerun = score(tiny_dataset, tiny_model, index, "ray", workers=1)
    assert rerun.skipped == len(written) and rerun.scored == len(ALL_ROWS) - len(written)
    assert [r[:2] for r in rows(index)] == ALL_ROWS


def test_an_unreachable_cluster_is_one_line_and_exit_2(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    args = ["score", str(tiny_dataset), "--index", str(index), "--model", str(tiny_model), "--engine", "ray"]
    for address, message in (("127.0.0.1:1", "cannot reach the Ray cluster at '127.0.0.1:1' (Connection refused)"), ("nowhere", "is not host:port")):
        result = subprocess.run([sys.executable, "-m", "curate.cli", *args, "--address", address], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not index.exists()  # refused before the index was opened
