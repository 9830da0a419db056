"""The real MetaWorld generator: a short dataset that LeRobotDataset loads, determinism, and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from typer.testing import CliRunner

from curate import datagen, lerobot_io
from curate.cli import app
from curate.datagen import MANIFEST, DatagenConfig, generate, plan
from curate.errors import CurateError
from policies.rollout import run_rollout

SHORT = dict(tasks=("reach",), episodes_per_task=2, recipes=("expert", "uniform"), size=32, steps=24, stride=2)


def test_generator_writes_a_lerobot_dataset_with_labels_and_cameras(tmp_path: Path) -> None:
    config = DatagenConfig(out=tmp_path / "mw", cameras=("corner2", "unseen:135:-30:1.4"), **SHORT)
    manifest = generate(config)
    ds = LeRobotDataset("local/mw", root=tmp_path / "mw")
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 24
    assert ds.fps == 40
    assert ds.meta.video_keys == ["observation.images.corner2", "observation.images.unseen"]
    assert ds.meta.features["observation.state"]["shape"] == (39,)
    assert ds.meta.features["action"]["shape"] == (4,)
    assert {"next.reward", "next.success"} <= set(ds.meta.features)
    episodes = lerobot_io.list_episodes(ds)
    assert [e.task for e in episodes] == ["Reach a goal position"] * 2
    assert [r["recipe"] for r in manifest["episodes"]] == ["expert", "uniform"]
    # quality is derived from next.success as stored, never from the recipe
    assert [r["quality"] for r in manifest["episodes"]] == [e.quality for e in episodes]
    assert json.loads((tmp_path / "mw" / MANIFEST).read_text())["episodes"] == manifest["episodes"]
    frames = lerobot_io.decode_frames(ds, [(0, [0, 11])], ds.meta.video_keys)[0]
    assert frames["observation.images.unseen"].shape == (2, 32, 32, 3)
    assert frames["observation.images.corner2"].std() > 10  # a rendered scene, not a blank frame
    actions = np.asarray(ds.hf_dataset.with_format("numpy")["action"])
    assert actions.shape == (24, 4) and np.abs(actions).max() <= 1.0


def test_same_seed_same_episodes_and_new_seed_new_ones() -> None:
    config = DatagenConfig(out=Path("unused"), **SHORT)
    assert [s.seed for s in plan(config)] == [s.seed for s in plan(DatagenConfig(out=Path("x"), **SHORT))]
    assert [s.seed for s in plan(config)] != [s.seed for s in plan(DatagenConfig(out=Path("x"), **SHORT | {"seed": 1}))]
    first, again = run_rollout(plan(config)[0]), run_rollout(plan(config)[0])
    assert np.array_equal(first.states, again.states) and np.array_equal(first.images["corner2"], again.images["corner2"])


def test_random_cameras_and_scenes_vary_per_episode_and_follow_the_view_seed_only() -> None:
    config = DatagenConfig(out=Path("x"), **SHORT | {"cameras": ("v0:random", "corner2"), "randomise_scene": True})
    specs = plan(config)
    poses = [s.cameras[0] for s in specs]
    assert all(not p.random and p.fixed is None for p in poses) and poses[0] != poses[1]  # a new pose per episode
    assert 0 <= poses[0].azimuth < 360 and -65 <= poses[0].elevation <= -15 and 35 <= poses[0].fovy <= 60
    assert [s.cameras[1].fixed for s in specs] == ["corner2", "corner2"]  # fixed cameras stay fixed
    assert plan(config) == specs  # reproducible
    other_views = plan(DatagenConfig(out=Path("x"), **SHORT | {"cameras": ("v0:random", "corner2"), "randomise_scene": True, "view_seed": 1}))
    assert [s.seed for s in other_views] == [s.seed for s in specs]  # the same episodes...
    assert [s.cameras[0] for s in other_views] != poses and [s.scene_seed for s in other_views] != [s.scene_seed for s in specs]  # ...seen anew
    plain = plan(DatagenConfig(out=Path("x"), **SHORT | {"cameras": ("v0:random", "corner2")}))
    assert [s.cameras for s in plain] == [s.cameras for s in specs] and {s.scene_seed for s in plain} == {None}
    recoloured, original = run_rollout(specs[0]), run_rollout(plain[0])
    assert np.array_equal(recoloured.states, original.states)  # colours and lights only: the physics is the same
    assert np.abs(recoloured.images["corner2"].astype(int) - original.images["corner2"]).mean() > 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tasks": ("drawer-opn",)}, "unknown MetaWorld task 'drawer-opn'; valid MT50 tasks: assembly"),
        ({"episodes_per_task": 0}, "--episodes-per-task must be at least 1, got 0"),
        ({"recipes": ("noisy",)}, "unknown recipe 'noisy'; valid recipes: expert"),
        ({"cameras": ("corner9",)}, "unknown camera 'corner9'"),
        ({"cameras": ("corner2:random",)}, "bad free camera 'corner2:random'"),
        ({"cameras": ("v0:rand",)}, "bad free camera 'v0:rand'; write NAME:AZIMUTH:ELEVATION:DISTANCE"),
    ],
)
def test_bad_config_is_one_clear_error(overrides: dict, message: str) -> None:
    with pytest.raises(CurateError, match=message):
        DatagenConfig(out=Path("x"), **SHORT | overrides)


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["datagen", "metaworld", "--out", str(tmp_path / "x"), "--tasks", "drawer-opn"])
    assert result.exit_code == 2
    assert "error: unknown MetaWorld task 'drawer-opn'" in result.output
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "exists"
    existing.mkdir()
    result = CliRunner().invoke(app, ["datagen", "metaworld", "--out", str(existing), "--tasks", "reach", "--steps", "4"])
    assert result.exit_code == 2 and "already exists; choose another path or pass --overwrite" in result.output
    (tmp_path / "a file").write_text("")
    result = CliRunner().invoke(app, ["datagen", "metaworld", "--out", str(tmp_path / "a file" / "x"), "--tasks", "reach", "--steps", "4"])
    assert result.exit_code == 2 and "Not a directory; choose another path" in result.output


def test_cli_info_lists_episodes_and_rejects_missing_paths(tiny_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["info", str(tiny_dataset)])
    assert result.exit_code == 0, result.output
    assert "4 episodes at 10 fps" in result.output and "suboptimal" in result.output
    result = CliRunner().invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist; give a LeRobot v3 dataset root" in result.output


def test_normal_runs_hide_ffmpeg_chatter_and_verbose_shows_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    args = ["datagen", "metaworld", "--tasks", "reach", "--episodes-per-task", "2", "--steps", "8", "--size", "32", "--overwrite"]
    quiet = subprocess.run([sys.executable, "-m", "curate.cli", *args, "--out", str(tmp_path / "q")], capture_output=True, text=True, timeout=300)
    loud = subprocess.run([sys.executable, "-m", "curate.cli", "--verbose", *args, "--out", str(tmp_path / "l")], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "moov atom" in loud.stderr and "Svt[info]" in loud.stderr  # FFmpeg's muxer and the AV1 encoder
    assert "moov atom" not in quiet.stderr and "Svt[info]" not in quiet.stderr and "Map:" not in quiet.stderr


def _frames_and_records(out: Path) -> tuple[dict, list[dict]]:
    ds = lerobot_io.open_dataset(str(out))
    lengths = [e.length for e in lerobot_io.list_episodes(ds)]
    frames = lerobot_io.decode_frames(ds, [(e, list(range(n))) for e, n in enumerate(lengths)], ds.meta.video_keys)
    return {(e, k): v for e, f in enumerate(frames) for k, v in f.items()}, json.loads((out / MANIFEST).read_text())["episodes"]


def test_a_killed_generation_resumes_from_its_finished_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datagen, "PART", 2)
    config = dict(SHORT, tasks=("reach", "drawer-open"), cameras=("corner2", "v0:random"), randomise_scene=True)
    generate(DatagenConfig(out=tmp_path / "whole", **config))
    expected_frames, expected_records = _frames_and_records(tmp_path / "whole")

    out = tmp_path / "mw"
    rolled: list[str] = []

    def killed_at_the_third(rollout) -> None:
        rolled.append(rollout.task)
        if len(rolled) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(DatagenConfig(out=out, **config), on_episode=killed_at_the_third)
    work = datagen.work_folder(out)
    assert not out.exists() and sorted(p.name for p in work.iterdir()) == [".curate_workspace", "part-00000", "settings.json"]  # part 2 was cut short

    # the same command again: the CLI says so, rolls out the other two parts only, and ends with the uninterrupted dataset
    rolled.clear()
    monkeypatch.setattr(datagen, "run_rollout", lambda spec: rolled.append(spec.task) or run_rollout(spec))
    args = ["datagen", "metaworld", "--out", str(out), "--tasks", "reach,drawer-open", "--episodes-per-task", "2", "--recipes", "expert,uniform",
            "--cameras", "corner2,v0:random", "--randomise-scene", "--size", "32", "--steps", "24", "--stride", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"resuming: 2 of 4 episodes were generated before, in {work}" in " ".join(result.output.split())
    assert rolled == ["drawer-open", "drawer-open"]
    frames, records = _frames_and_records(out)
    assert records == expected_records and frames.keys() == expected_frames.keys()
    assert all(np.array_equal(frames[k], expected_frames[k]) for k in frames)
    assert not work.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mw", "whole"]


def test_a_generation_with_other_settings_starts_over_and_a_stranger_in_the_work_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datagen, "PART", 1)
    out = tmp_path / "mw"

    def killed_at_the_second(rollout) -> None:
        killed_at_the_second.calls += 1
        if killed_at_the_second.calls == 2:
            raise KeyboardInterrupt

    killed_at_the_second.calls = 0
    with pytest.raises(KeyboardInterrupt):
        generate(DatagenConfig(out=out, **SHORT), on_episode=killed_at_the_second)
    resumed: list[int] = []
    generate(DatagenConfig(out=out, **SHORT | {"seed": 1}), on_resume=lambda n, _: resumed.append(n))
    assert resumed == [] and not datagen.work_folder(out).exists()  # another seed: a new plan, nothing kept

    for name in ("notes.txt", "settings.json"):  # a user's folder of that name, even with a file named as curate's
        work = datagen.work_folder(tmp_path / name)
        work.mkdir()
        (work / name).write_text("mine")
        with pytest.raises(CurateError, match="holds files curate did not put there"):
            generate(DatagenConfig(out=tmp_path / name, **SHORT))
        assert (work / name).read_text() == "mine"
    work = datagen.work_folder(tmp_path / "third")
    work.write_text("a file")
    with pytest.raises(CurateError, match="is a file; give a folder"):
        generate(DatagenConfig(out=tmp_path / "third", **SHORT))
