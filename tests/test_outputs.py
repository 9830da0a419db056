"""Nothing a user owns is deleted or modified: outputs stay apart from inputs, --overwrite replaces only curate's own
output, killed runs leave nothing that the next run does not clean, and every case gets one clear line."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import TINY_EPISODES, known_index
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import CurateError
from curate.outputs import MARKER, atomic_folder, write_file

runner = CliRunner()


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` with a hash of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    assert message in result.output and result.output.count("\n") == 1, result.output


@pytest.fixture()
def workspace(tiny_dataset: Path, tmp_path: Path) -> Path:
    """A user's folder: a copy of the tiny dataset, a file beside it, an index of scores on the copy."""
    home = tmp_path / "home"
    shutil.copytree(tiny_dataset, home / "play" / "source")
    (home / "play" / "notes.txt").write_text("my notes")
    (home / "mine").mkdir()
    (home / "mine" / "thesis.tex").write_text("precious")
    (home / "scores").mkdir()
    known_index(home / "scores" / "k.duckdb", home / "play" / "source")
    return home


def filter_args(home: Path, out: Path, *extra: str) -> list[str]:
    return ["filter", "--index", str(home / "scores" / "k.duckdb"), "--instruction", "do the task", "--top-k", "2", "--out", str(out), *extra]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("play", "holds the input"),  # the source dataset's parent
        ("play/source", "is an input of this command"),
        ("play/source/meta", "lies inside the input"),
        ("scores", "holds the input"),  # the folder of the index being read
        ("mine", "mine holds thesis.tex, which curate did not write"),  # an unrelated user folder
    ],
)
def test_filter_overwrite_never_touches_inputs_or_user_folders(workspace: Path, where: str, message: str) -> None:
    before = snapshot(workspace)
    refused(filter_args(workspace, workspace / where, "--overwrite"), message)
    assert snapshot(workspace) == before


def test_filter_never_writes_inside_the_source(workspace: Path) -> None:
    before = snapshot(workspace)
    refused(filter_args(workspace, workspace / "play" / "source" / "best"), "lies inside the input")
    assert snapshot(workspace) == before


def test_overwrite_replaces_curate_output_but_not_a_file_a_user_added(workspace: Path) -> None:
    out = workspace / "best"
    assert runner.invoke(app, filter_args(workspace, out)).exit_code == 0
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["files"]) == set(snapshot(out)) - {MARKER}
    again = runner.invoke(app, filter_args(workspace, out, "--overwrite"))
    assert again.exit_code == 0, again.output
    (out / "my_labels.csv").write_text("added by hand")
    before = snapshot(workspace)
    refused(filter_args(workspace, out, "--overwrite"), "holds my_labels.csv, which curate did not write")
    assert snapshot(workspace) == before
    existing_file = workspace / "mine" / "thesis.tex"
    refused(filter_args(workspace, existing_file, "--overwrite"), "is a file, not a folder curate wrote")
    assert existing_file.read_text() == "precious"


def test_filter_refuses_a_dataset_that_changed_since_it_was_scored(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    from curate.lerobot_io import write_dataset
    from tiny import CAMERAS, tiny_episode

    source = tmp_path / "source"
    shutil.copytree(tiny_dataset, source)
    index = tmp_path / "i.duckdb"
    assert runner.invoke(app, ["score", str(source), "--index", str(index), "--model", str(tiny_model), "--frames", "2"]).exit_code == 0
    shutil.rmtree(source)
    write_dataset(source, (tiny_episode(i, *TINY_EPISODES[i]) for i in (2, 3, 0, 1)), fps=10, camera_keys=CAMERAS)
    args = ["filter", "--index", str(index), "--instruction", "press the button", "--top-k", "1", "--out", str(tmp_path / "out")]
    refused(args, "changed since it was scored into")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (lambda d, out: ["rm", "train", "--dataset", str(d), "--out", str(d), "--overwrite", "--steps", "5"], "is an input of this command"),
        (lambda d, out: ["rm", "train", "--dataset", str(d), "--out", str(out), "--overwrite", "--steps", "5"], "which curate did not write"),
        (lambda d, out: ["bc", "train", str(d), "--out", str(d.parent), "--overwrite"], "holds the input"),
        (lambda d, out: ["bc", "train", str(d), "--out", str(out), "--overwrite"], "which curate did not write"),
        (lambda d, out: ["retrieve", "train", str(d), "--out", str(d / "meta"), "--overwrite"], "lies inside the input"),
        (lambda d, out: ["retrieve", "train", str(d), "--out", str(out), "--overwrite"], "which curate did not write"),
        (lambda d, out: ["datagen", "metaworld", "--out", str(out), "--overwrite"], "which curate did not write"),
        (lambda d, out: ["compare", "--tasks", "drawer-open", "--out", str(out)], "holds files curate did not put there"),
        (lambda d, out: ["bench", "--out", str(out)], "holds files curate did not put there"),
    ],
)
def test_every_writing_command_refuses_inputs_and_user_folders(workspace: Path, command, message: str) -> None:
    before = snapshot(workspace)
    refused(command(workspace / "play" / "source", workspace / "mine"), message)
    assert snapshot(workspace) == before


def test_a_killed_runs_leftover_is_cleaned_by_the_next_run(workspace: Path) -> None:
    out = workspace / "best"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    leftover = workspace / f".best.partial-{gone}-0123abcd"
    (leftover / "meta").mkdir(parents=True)
    alive = workspace / f".best.partial-{os.getpid()}-0123abcd"  # a run still going: left alone
    alive.mkdir()
    assert runner.invoke(app, filter_args(workspace, out)).exit_code == 0
    assert not leftover.exists() and alive.exists()


def test_single_files_are_replaced_only_when_curate_wrote_them(workspace: Path) -> None:
    index = workspace / "scores" / "k.duckdb"
    report = workspace / "report.html"
    assert runner.invoke(app, ["report", "--index", str(index), "--instruction", "do the task", "--out", str(report)]).exit_code == 0
    assert runner.invoke(app, ["report", "--index", str(index), "--instruction", "do the task", "--out", str(report)]).exit_code == 0  # ours: replaced
    before = snapshot(workspace)
    refused(["report", "--index", str(index), "--instruction", "do the task", "--out", str(workspace / "mine" / "thesis.tex")], "exists and curate did not write it")
    refused(["report", "--index", str(index), "--instruction", "do the task", "--out", str(index)], "is an input of this command")
    refused(["report", "--index", str(index), "--instruction", "do the task", "--out", str(workspace / "mine")], "is a folder; give a file path")
    refused(["report", "--index", str(index), "--instruction", "do the task", "--out", str(workspace / "play" / "notes.txt" / "r.html")], "cannot write")
    refused(["report", "--index", str(index), "--instruction", "do the task", "--out", str(report), "--show", "-2"], "--show must be at least 1, got -2")
    assert snapshot(workspace) == before
    assert not [p for p in workspace.rglob("*partial*")]


# --- the rule itself, over many layouts ----------------------------------------------------------------------------

LAYOUT = ["a", "a/b", "a/b/c", "d", "d/e", "f"]  # folders a user has; each holds one file of theirs or none


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.sampled_from(LAYOUT), unique=True),
    ours=st.sampled_from([None, "g", "a/g", "d/e/g"]),
    stray=st.booleans(),
    inputs=st.lists(st.sampled_from([*LAYOUT, "a/b/c/x.txt"]), max_size=2),
    target=st.sampled_from([*LAYOUT, "g", "a/g", "d/e/g", "new", "a/b/new", "a/b/c/x.txt"]),
)
def test_overwrite_never_deletes_an_input_or_anything_curate_did_not_write(tmp_path_factory, files, ours, stray, inputs, target) -> None:
    root = tmp_path_factory.mktemp("layout")
    for folder in LAYOUT:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for folder in files:
        (root / folder / "x.txt").write_text(f"user file in {folder}")
    if ours is not None:  # an earlier output of curate, maybe with a file the user added since
        with atomic_folder(root / ours, overwrite=False) as partial:
            partial.mkdir()
            (partial / "out.bin").write_bytes(b"curate")
        if stray:
            (root / ours / "added.txt").write_text("user file")
    user_files = {k: v for k, v in snapshot(root).items() if ours is None or not k.startswith(f"{ours}/") or k.endswith("added.txt")}
    input_files = {k: v for k, v in snapshot(root).items() if any(k == i or k.startswith(f"{i}/") for i in inputs)}
    try:
        with atomic_folder(root / target, overwrite=True, inputs=[root / i for i in inputs]) as partial:
            partial.mkdir()
            (partial / "result.bin").write_bytes(b"new")
        replaced = True
    except CurateError:
        replaced = False
    after = snapshot(root)
    for name, digest in {**user_files, **input_files}.items():
        assert after.get(name) == digest, (name, target, inputs)
    if replaced:
        assert (root / target / "result.bin").read_bytes() == b"new"
    assert not [p for p in root.rglob("*partial*")]


def test_write_file_needs_the_stamp_and_keeps_foreign_files(tmp_path: Path) -> None:
    mine = tmp_path / "data.json"
    mine.write_text('{"x": 1}')
    with pytest.raises(CurateError, match="exists and curate did not write it"):
        write_file(mine, '{"about": "written by curate: test"}')
    assert mine.read_text() == '{"x": 1}'
    ours = write_file(tmp_path / "ours.json", '{"about": "written by curate: test"}')
    assert write_file(ours, '{"about": "written by curate: again"}').read_text() == '{"about": "written by curate: again"}'
