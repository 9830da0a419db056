"""score -> index -> rank -> filter -> export on tiny datasets, with exact rows, resumption after SIGKILL and bad input."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pytest
from tiny import CAMERAS, TINY_EPISODES, frame_image, known_index, tiny_episode
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from typer.testing import CliRunner

from curate.cli import app
from curate.export import SelectConfig, select
from curate.filters import make_filter
from curate.index import Index
from curate.provenance import file_sha256

runner = CliRunner()


def score_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate.cli", "score", *args], capture_output=True, text=True, timeout=300)


def test_score_fills_the_index_with_one_row_per_episode_and_instruction(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    args = ["score", str(tiny_dataset), "--index", str(index), "--model", str(tiny_model), "--instruction", "open the drawer", "--frames", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scored 6, already in the index 0, failed 0" in result.output
    db = duckdb.connect(str(index), read_only=True)
    rows = db.execute("SELECT dataset, episode_index, instruction, model, final_progress, mean_progress, success_prob, frame_index, frame_progress FROM episode_scores ORDER BY episode_index, instruction").fetchall()
    db.close()
    # own task for all four, plus "open the drawer" for the two button episodes
    assert [(r[1], r[2]) for r in rows] == [(0, "open the drawer"), (1, "open the drawer"), (2, "open the drawer"), (2, "press the button"), (3, "open the drawer"), (3, "press the button")]
    assert {r[0] for r in rows} == {str(tiny_dataset.resolve())}
    assert {r[3] for r in rows} == {f"tiny_rm@{file_sha256(tiny_model / 'model.safetensors')[:12]}"}
    lengths = {i: n for i, (_, n, _) in enumerate(TINY_EPISODES)}
    for r in rows:
        assert r[7] == sorted(r[7]) and r[7][0] == 0 and r[7][-1] == lengths[r[1]] - 1 and len(r[7]) == 4
        assert len(r[8]) == 4 and r[4] == r[8][-1] and r[5] == pytest.approx(np.mean(r[8]))
        assert all(0 <= v <= 1 for v in (r[4], r[5], r[6], *r[8]))
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "scored 0, already in the index 6, failed 0" in again.output
    ranked = runner.invoke(app, ["rank", "--index", str(index), "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    order = json.loads(ranked.output)
    assert [r["episode_index"] for r in order] == [r[1] for r in sorted((r for r in rows if r[2] == TINY_EPISODES[r[1]][0]), key=lambda r: -r[4])]


def test_progress_counts_episodes_each_under_all_its_instructions(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    from curate.scoring import ScoreConfig, prepare, score_dataset

    calls = []
    config = ScoreConfig(str(tiny_dataset), index=tmp_path / "i.duckdb", model=str(tiny_model), instructions=("open the drawer",), frames=4, batch_size=3)
    summary = score_dataset(prepare(config), lambda done, total: calls.append((done, total)))
    assert summary.scored == 6 and calls == [(0, 4), (3, 4), (4, 4)]  # 6 rows of 4 episodes, in batches of 3 episodes


def test_rank_without_model_takes_the_shipped_default_else_asks(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    from curate.scorers import shipped_model_id

    other = tmp_path / "other_rm"
    shutil.copytree(tiny_model, other)
    two, with_default = tmp_path / "two.duckdb", tmp_path / "default.duckdb"
    for index, models in ((two, [tiny_model, other]), (with_default, [tiny_model, None])):
        for model in models:
            extra = [] if model is None else ["--model", str(model)]
            result = runner.invoke(app, ["score", str(tiny_dataset), "--index", str(index), "--frames", "4", *extra])
            assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["rank", "--index", str(two)])
    assert result.exit_code == 2 and "holds scores of several models; pass --model" in result.output
    # --model takes what `curate score --model` took, as well as the index's id
    for model, index in ((other, two), ("default", with_default)):
        by_folder = runner.invoke(app, ["rank", "--index", str(index), "--model", str(model), "--format", "json"])
        assert by_folder.exit_code == 0, by_folder.output
        expected = shipped_model_id() if model == "default" else f"other_rm@{file_sha256(other / 'model.safetensors')[:12]}"
        assert {r["model"] for r in json.loads(by_folder.output)} == {expected}
    unknown = runner.invoke(app, ["rank", "--index", str(two), "--model", str(tmp_path)])
    assert unknown.exit_code == 2 and "has no scores in" in unknown.output
    ranked = runner.invoke(app, ["rank", "--index", str(with_default), "--format", "json"])
    assert ranked.exit_code == 0, ranked.output
    assert {r["model"] for r in json.loads(ranked.output)} == {shipped_model_id()}


def test_a_lerobot_registry_model_scores_through_the_same_path(tiny_dataset: Path, tmp_path: Path) -> None:
    from tiny_reward_plugin.configuration_tiny import TinyBrightnessConfig
    from tiny_reward_plugin.modeling_tiny import TinyBrightnessRewardModel

    folder = tmp_path / "brightness"
    TinyBrightnessRewardModel(TinyBrightnessConfig(scale=1.0)).save_pretrained(folder)
    index = tmp_path / "i.duckdb"
    result = runner.invoke(app, ["score", str(tiny_dataset), "--index", str(index), "--model", str(folder), "--frames", "3", "--camera", "side"])
    assert result.exit_code == 0, result.output
    with Index(index, read_only=True) as db:
        rows = db.scores()
    assert len(rows) == 4 and set(rows["model"]) == {f"brightness@{file_sha256(folder / 'model.safetensors')[:12]}"}
    # the reward is the last frame's mean brightness: the flat colour frame_image drew, within video loss
    expected = [frame_image(e, n - 1, 1).mean() / 255 for e, (_, n, _) in enumerate(TINY_EPISODES)]
    assert rows.sort_values("episode_index")["final_progress"].tolist() == pytest.approx(expected, abs=0.02)
    ranked = runner.invoke(app, ["rank", "--index", str(index), "--model", str(folder), "--format", "json"])
    assert ranked.exit_code == 0 and len(json.loads(ranked.output)) == 4, ranked.output
    dense = runner.invoke(app, ["score", str(tiny_dataset), "--index", str(tmp_path / "d.duckdb"), "--model", str(folder), "--stride", "1"])
    assert dense.exit_code == 2 and "scores sampled frames only: drop --stride" in dense.output and not (tmp_path / "d.duckdb").exists()


@pytest.mark.parametrize(
    ("flags", "per_task", "kept", "dropped"),
    [
        ({"top-k": 2}, False, [3, 0], {"not in the top 2": 2}),
        ({"top-frac": 0.5}, False, [3, 0], {"not in the top 50%": 2}),
        ({"min-progress": 0.5}, False, [3, 0, 2], {"final progress below 0.5": 1}),
        ({"min-success": 0.5}, False, [3, 2], {"success probability below 0.5": 2}),
        # each filter sees the rows the earlier ones kept: top-2 of the two that pass min-success
        ({"min-success": 0.5, "top-k": 2}, False, [3, 2], {"success probability below 0.5": 2}),
        ({"top-k": 1}, True, [3, 0], {"not in the top 1": 2}),
    ],
)
def test_filters_keep_exactly_the_expected_episodes(tiny_dataset: Path, tmp_path: Path, flags: dict, per_task: bool, kept: list[int], dropped: dict) -> None:
    index = known_index(tmp_path / "k.duckdb", tiny_dataset)
    config = SelectConfig(index, "do the task", tuple(make_filter(k, v) for k, v in flags.items()), per_task=per_task)
    selection = select(config)
    assert selection.kept["episode_index"].tolist() == kept
    assert dict(selection.dropped_by_reason()) == dropped


def test_filter_exports_exactly_the_selection_bit_identical_and_relabelled(tiny_dataset: Path, tmp_path: Path) -> None:
    index = known_index(tmp_path / "k.duckdb", tiny_dataset)
    out = tmp_path / "best"
    args = ["filter", "--index", str(index), "--instruction", "do the task", "--top-k", "2", "--out", str(out), "--relabel-task"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dropped: not in the top 2" in result.output
    subset = LeRobotDataset("local/best", root=out)
    assert subset.meta.total_episodes == 2
    assert [list(e["tasks"]) for e in subset.meta.episodes] == [["do the task"], ["do the task"]]
    data = subset.hf_dataset.with_format("numpy")
    for key in ("observation.state", "action"):
        expected = np.concatenate([tiny_episode(e, *TINY_EPISODES[e]).arrays[key] for e in (0, 3)])  # source order
        assert np.array_equal(np.asarray(data[key]), expected)
    manifest = json.loads((out / "curate_selection.json").read_text())
    assert [(e["episode_index"], e["source_episode_index"]) for e in manifest["episodes"]] == [(0, 0), (1, 3)]
    assert manifest["model"] == "m@1" and manifest["filters"] == {"top-k": 2.0} and manifest["dropped"] == {"not in the top 2": 2}
    tool = str(Path(sys.executable).parent / "lerobot-edit-dataset")
    info = subprocess.run([tool, "--repo_id", "local/best", "--root", str(out), "--operation.type", "info"], capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # else it probes the hub
    assert info.returncode == 0, info.stderr
    assert "Total episode: 2" in info.stdout and "Total frame(Actual Count): 21(21)" in info.stdout
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists; choose another path or pass --overwrite" in again.output


def test_a_run_killed_mid_write_resumes_without_duplicates_or_gaps(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    args = [str(tiny_dataset), "--index", str(index), "--model", str(tiny_model), "--frames", "4", "--batch-size", "1", "--instruction", "open the drawer"]
    # SIGKILL the real CLI inside its second write transaction, after its inserts and before COMMIT
    killer = textwrap.dedent(f"""
        import os, signal, sys
        from curate import index as ix
        class Proxy:
            commits = 0
            def __init__(self, db): self._db = db
            def __getattr__(self, name): return getattr(self._db, name)
            def execute(self, sql, *args):
                if sql == "COMMIT":
                    Proxy.commits += 1
                    if Proxy.commits == 2:
                        os.kill(os.getpid(), signal.SIGKILL)
                return self._db.execute(sql, *args)
        init = ix.Index.__init__
        def patched(self, *a, **k):
            init(self, *a, **k)
            self.db = Proxy(self.db)
        ix.Index.__init__ = patched
        from curate.cli import app
        app(["score", *{args!r}])
    """)
    killed = subprocess.run([sys.executable, "-c", killer], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    with Index(index, read_only=True) as db:
        assert db.scores()["episode_index"].tolist() == [0]  # only the first batch's whole episode
    resumed = score_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "scored 5, already in the index 1, failed 0" in resumed.stdout
    with Index(index, read_only=True) as db:
        rows = db.scores()
    assert sorted(zip(rows["episode_index"], rows["instruction"])) == [(0, "open the drawer"), (1, "open the drawer"), (2, "open the drawer"), (2, "press the button"), (3, "open the drawer"), (3, "press the button")]


def test_a_locked_index_is_refused_clearly(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    # the holder keeps the index open until its stdin closes, however long scoring takes to start on a busy machine
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; db = duckdb.connect({str(index)!r}); print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = score_cli(str(tiny_dataset), "--index", str(index), "--model", str(tiny_model))
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert result.returncode == 2
    assert f"index {index} is in use by another curate process (process {holder.pid}); wait for it to finish or pass another --index" in result.stderr


def test_a_corrupt_video_fails_its_episodes_and_the_run_goes_on(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    video = next((broken / "videos" / CAMERAS[0]).rglob("*.mp4"))
    video.write_bytes(video.read_bytes()[:300])
    index = tmp_path / "i.duckdb"
    result = score_cli(str(broken), "--index", str(index), "--model", str(tiny_model))
    assert result.returncode == 1
    assert "4 episode x instruction pairs failed" in result.stderr
    with Index(index, read_only=True) as db:
        failures = db.failures()
        assert db.scores().empty
    assert failures["episode_index"].tolist() == [0, 1, 2, 3]
    assert all("corrupt" in reason for reason in failures["reason"])
    ok = score_cli(str(broken), "--index", str(index), "--model", str(tiny_model), "--camera", "side")
    assert ok.returncode == 0, ok.stderr  # another camera of the same dataset still scores


def test_bad_input_gives_one_line_and_exit_2(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    index = tmp_path / "i.duckdb"
    cases = [
        (["score", str(tmp_path / "nope"), "--index", str(index)], "does not exist; give a LeRobot v3 dataset root"),
        (["score", str(tiny_dataset), "--index", str(index), "--model", str(tiny_model), "--camera", "wrist"], "unknown camera key 'wrist'"),
        (["score", str(tiny_dataset), "--index", str(index), "--model", str(tmp_path)], "is not a reward model folder"),
        (["rank", "--index", str(tmp_path / "none.duckdb")], "does not exist; run `curate score DATASET"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and result.output.count("\n") == 1, result.output
    changed = tmp_path / "changed"
    shutil.copytree(tiny_dataset, changed)
    assert runner.invoke(app, ["score", str(changed), "--index", str(index), "--model", str(tiny_model)]).exit_code == 0
    shutil.rmtree(changed)
    from curate.lerobot_io import write_dataset

    write_dataset(changed, (tiny_episode(i, *TINY_EPISODES[i]) for i in (0, 1)), fps=10, camera_keys=CAMERAS)
    result = runner.invoke(app, ["score", str(changed), "--index", str(index), "--model", str(tiny_model)])
    assert result.exit_code == 2 and "changed since it was scored into" in result.output
    newer = tmp_path / "newer.duckdb"
    known_index(newer, tiny_dataset)
    db = duckdb.connect(str(newer))
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    result = runner.invoke(app, ["rank", "--index", str(newer)])
    assert result.exit_code == 2 and "was written by a newer curate (schema 99, this one reads 3); upgrade curate" in result.output
    result = runner.invoke(app, ["rank", "--index", str(known_index(tmp_path / "k.duckdb", tiny_dataset)), "--instruction", "fly"])
    assert result.exit_code == 2 and "no scores under instruction 'fly'" in result.output
