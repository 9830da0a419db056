"""`curate retrieve`: a tiny SigLIP trained through the real command, faiss frame store, rankings in the index,
export with `curate filter --retrieval`, and bad input."""

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from curate.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_siglip(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("siglip") / "sig"
    result = runner.invoke(app, ["retrieve", "train", str(tiny_dataset), "--out", str(out), "--steps", "60", "--batch-size", "16", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    return out


def retrievals(index: Path) -> list[tuple]:
    db = duckdb.connect(str(index), read_only=True)
    rows = db.execute("SELECT query, episode_index, task, similarity FROM retrievals ORDER BY query, similarity DESC, episode_index").fetchall()
    db.close()
    return rows


def test_text_query_ranks_every_episode_and_the_task_first(tiny_dataset: Path, tiny_siglip: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    result = runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tiny_siglip), "--query", "open the drawer", "--index", str(index), "--frames", "4"])
    assert result.exit_code == 0, result.output
    rows = retrievals(index)
    assert len(rows) == 4 and {r[1] for r in rows} == {0, 1, 2, 3}
    assert {r[2] for r in rows[:2]} == {"open the drawer"}  # the trained model puts the task's own episodes first
    assert all(-1 <= r[3] <= 1 for r in rows)
    (store,) = (tmp_path / "i.faiss").iterdir()
    meta = json.loads((store / "store.json").read_text())
    assert meta["vectors"] == 16 and meta["frames"] == 4  # 4 frames of each of the 4 episodes
    written = (store / "frames.faiss").stat().st_mtime_ns
    again = runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tiny_siglip), "--query", "press the button", "--index", str(index), "--frames", "4"])
    assert again.exit_code == 0, again.output
    assert (store / "frames.faiss").stat().st_mtime_ns == written  # vectors reused, not re-embedded
    assert [r[0] for r in retrievals(index)].count("press the button") == 4


def test_demo_query_finds_the_demo_itself_first(tiny_dataset: Path, tiny_siglip: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    result = runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tiny_siglip), "--demo", "3", "--index", str(index)])
    assert result.exit_code == 0, result.output
    rows = retrievals(index)
    assert rows[0][:2] == ("demo:3", 3) and rows[0][3] == pytest.approx(1.0, abs=1e-5)


def test_filter_exports_the_top_of_a_retrieval(tiny_dataset: Path, tiny_siglip: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    assert runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tiny_siglip), "--query", "press the button", "--index", str(index)]).exit_code == 0
    top2 = [r[1] for r in retrievals(index)[:2]]
    out = tmp_path / "picked"
    result = runner.invoke(app, ["filter", "--retrieval", "--instruction", "press the button", "--top-k", "2", "--index", str(index), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "curate_selection.json").read_text())
    assert manifest["source"] == "retrieval" and manifest["model"].startswith("siglip:sig@")
    assert [e["source_episode_index"] for e in manifest["episodes"]] == sorted(top2)
    refused = runner.invoke(app, ["filter", "--retrieval", "--instruction", "press the button", "--min-progress", "0.5", "--index", str(index), "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "with --retrieval use --top-k or --top-frac" in refused.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--query", "open the drawer", "--demo", "1"], "give exactly one of --query TEXT or --demo EPISODE"),
        (["--demo", "9"], "demo episodes [9] are not non-empty episodes"),
        (["--query", "x", "--camera", "observation.images.top"], "unknown camera key 'observation.images.top'"),
    ],
)
def test_bad_queries_fail_with_one_clear_line(tiny_dataset: Path, tiny_siglip: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tiny_siglip), "--index", str(tmp_path / "i.duckdb"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "i.faiss").exists()


def test_a_reward_model_or_missing_folder_is_not_taken_for_siglip(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    wrong = runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tiny_model), "--query", "x", "--index", str(tmp_path / "i.duckdb")])
    assert wrong.exit_code == 2 and "is a non-transformers checkpoint, not SigLIP" in wrong.output, wrong.output
    missing = runner.invoke(app, ["retrieve", "query", str(tiny_dataset), "--model", str(tmp_path / "nope"), "--query", "x", "--index", str(tmp_path / "i.duckdb")])
    assert missing.exit_code == 2 and "cannot load SigLIP model" in missing.output and "curate retrieve train" in missing.output


def test_a_dataset_changed_since_the_index_saw_it_is_refused_before_any_embedding(tiny_dataset: Path, tiny_siglip: Path, tmp_path: Path) -> None:
    import shutil

    from tiny import CAMERAS, TINY_EPISODES, tiny_episode

    from curate.lerobot_io import write_dataset

    source = tmp_path / "source"
    shutil.copytree(tiny_dataset, source)
    args = ["retrieve", "query", str(source), "--model", str(tiny_siglip), "--query", "open the drawer", "--index", str(tmp_path / "i.duckdb"), "--frames", "2"]
    assert runner.invoke(app, args).exit_code == 0
    stores = {f: f.stat().st_mtime_ns for f in (tmp_path / "i.faiss").rglob("*")}
    shutil.rmtree(source)
    write_dataset(source, (tiny_episode(i, *TINY_EPISODES[i]) for i in (2, 3, 0, 1)), fps=10, camera_keys=CAMERAS)
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "changed since it was scored into" in result.output
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "i.faiss").rglob("*")} == stores  # nothing embedded or rewritten
