"""Odd and bad input a careful user tries: one clear line and exit 2, never a traceback or a silently wrong result."""

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from tiny import known_index
from typer.testing import CliRunner

from curate.cli import app

runner = CliRunner()


def refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    assert message in result.output and result.output.count("\n") == 1, result.output


def scored_settings(index: Path) -> set[tuple]:
    db = duckdb.connect(str(index), read_only=True)
    rows = db.execute("SELECT s.frame_index, r.camera, r.frames FROM scores s JOIN runs r USING (run_id)").fetchall()
    db.close()
    return {(len(f), c, n) for f, c, n in rows}


def test_scores_from_other_frames_or_cameras_are_never_taken_for_done(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    base = ["score", str(tiny_dataset), "--index", str(index), "--model", str(tiny_model)]
    first = runner.invoke(app, [*base, "--frames", "1"])
    assert first.exit_code == 0 and "scored 4, already in the index 0" in first.output
    db = duckdb.connect(str(index), read_only=True)
    assert db.execute("SELECT list(frame_index[1] ORDER BY episode_index) FROM scores").fetchone()[0] == [9, 11, 7, 10]  # the last frame
    db.close()
    refused([*base, "--frames", "4"], "4 of these scores are already in")
    refused([*base, "--frames", "1", "--camera", "side"], "from camera observation.images.front with 1 sampled frame, not observation.images.side with 1 sampled frame;")
    assert scored_settings(index) == {(1, "observation.images.front", 1)}
    again = runner.invoke(app, [*base, "--frames", "4", "--rescore"])
    assert again.exit_code == 0 and "scored 4, already in the index 0, failed 0, of the scored 4 replaced earlier settings" in again.output
    assert scored_settings(index) == {(4, "observation.images.front", 4)}
    same = runner.invoke(app, [*base, "--frames", "4"])
    assert same.exit_code == 0 and "scored 0, already in the index 4" in same.output


def test_a_missing_data_file_is_named_and_the_hub_never_asked(tiny_dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "nodata"
    shutil.copytree(tiny_dataset, broken)
    data = next((broken / "data").rglob("*.parquet"))
    data.unlink()
    refused(["info", str(broken)], f"data file {data} is missing; the dataset is incomplete")
    (broken / "meta" / "tasks.parquet").unlink()
    refused(["score", str(broken), "--index", str(tmp_path / "i.duckdb")], "tasks.parquet is missing")
    assert not (tmp_path / "i.duckdb").exists()


def test_an_index_inside_the_dataset_is_refused(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(tiny_dataset, source)
    refused(["score", str(source), "--index", str(source / "meta" / "i.duckdb"), "--model", str(tiny_model)], "lies inside the input")
    assert not (source / "meta" / "i.duckdb").exists()


@pytest.mark.parametrize("flags", [["--top", "0"], ["--top", "-1"], ["--bottom", "-2"]])
def test_rank_counts_below_one_are_refused(tiny_dataset: Path, tmp_path: Path, flags: list[str]) -> None:
    index = known_index(tmp_path / "k.duckdb", tiny_dataset)
    refused(["rank", "--index", str(index), "--instruction", "do the task", *flags], f"{flags[0]} must be at least 1, got {flags[1]}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"type": "act"}, "holds a 'act' model, not a reward model"),
        (5, 'names no model "type"'),
        (["curate_robometer"], 'names no model "type"'),
        ({"backbone": "compact"}, 'names no model "type"'),
        ("{not json", "is not valid JSON; the checkpoint is corrupt"),
    ],
)
def test_a_foreign_model_folder_is_refused_with_one_line(tiny_dataset: Path, tmp_path: Path, content, message: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(content if isinstance(content, str) else json.dumps(content))
    (folder / "model.safetensors").write_bytes(b"")
    refused(["score", str(tiny_dataset), "--index", str(tmp_path / "i.duckdb"), "--model", str(folder)], message)
    if content != {"type": "act"}:  # rm eval loads through the reward model's own loader
        result = runner.invoke(app, ["rm", "eval", str(tiny_dataset), "--model", str(folder)])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output


@pytest.mark.parametrize("frames", ["0", "100000"])
def test_rm_eval_frames_outside_the_model_are_refused(tiny_dataset: Path, tiny_model: Path, frames: str) -> None:
    refused(["rm", "eval", str(tiny_dataset), "--model", str(tiny_model), "--frames", frames], f"--frames must be between 1 and 8 (the model's longest trajectory), got {frames}")
