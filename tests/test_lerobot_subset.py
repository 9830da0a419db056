"""Subsets and trimmed episodes reuse the source's encoded video: frames decode identical, values and stats are right."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from tiny import CAMERAS
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from curate import lerobot_io
from curate.errors import CurateError
from curate.lerobot_subset import Span


def all_frames(root: Path, episode: int, frames: list[int]) -> dict[str, np.ndarray]:
    return lerobot_io.decode_frames(lerobot_io.open_dataset(root), [(episode, frames)], list(CAMERAS))[0]


def states(root: Path) -> np.ndarray:
    return np.asarray(LeRobotDataset("local/x", root=root).hf_dataset.with_format("numpy")["observation.state"])


def test_a_subset_decodes_frame_for_frame_like_its_source_and_has_the_re_encoded_subsets_stats(tiny_dataset: Path, tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_dataset.rglob("*")}
    copied = lerobot_io.write_subset(tiny_dataset, [0, 3], tmp_path / "copied")
    reencoded = lerobot_io.write_subset(tiny_dataset, [0, 3], tmp_path / "reencoded", reencode=True)
    for new, old, length in ((0, 0, 10), (1, 3, 11)):
        ours, theirs = all_frames(copied, new, list(range(length))), all_frames(tiny_dataset, old, list(range(length)))
        for camera in CAMERAS:
            assert np.array_equal(ours[camera], theirs[camera])  # the same encoded bytes: identical, not merely close
    assert np.array_equal(states(copied), states(reencoded))
    ours, theirs = (json.loads((root / "meta" / "stats.json").read_text()) for root in (copied, reencoded))
    for key in ("observation.state", "action", "next.reward", *CAMERAS):
        for name in ("min", "max", "mean", "std", "count"):
            np.testing.assert_allclose(ours[key][name], theirs[key][name], rtol=1e-5, atol=1e-6, err_msg=f"{key}/{name}")
    assert ours["index"]["max"] == [20]  # renumbered (lerobot's path keeps the source's per-episode index stats)
    info = json.loads((copied / "meta" / "info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"], info["splits"]) == (2, 21, 2, {"train": "0:2"})
    assert {p: p.stat().st_mtime_ns for p in tiny_dataset.rglob("*")} == before


def test_a_trimmed_episode_points_into_the_same_video_and_loads_in_lerobot(tiny_dataset: Path, tmp_path: Path) -> None:
    out = lerobot_io.write_subset(tiny_dataset, [Span(1, 3, 9), Span(2)], tmp_path / "trimmed")
    subset = LeRobotDataset("local/trimmed", root=out)
    assert [int(e["length"]) for e in subset.meta.episodes] == [6, 8]
    trimmed = all_frames(out, 0, list(range(6)))
    original = all_frames(tiny_dataset, 1, list(range(3, 9)))
    for camera in CAMERAS:
        assert np.array_equal(trimmed[camera], original[camera])
    assert np.array_equal(states(out)[:6], states(tiny_dataset)[10 + 3 : 10 + 9])
    item = subset[0]  # lerobot's own item path: timestamps, video lookup and decoding
    assert int(item["frame_index"]) == 0 and float(item["timestamp"]) == 0.0
    assert item[CAMERAS[0]].shape == (3, 32, 32)
    np.testing.assert_allclose(item[CAMERAS[0]].permute(1, 2, 0).numpy() * 255, original[CAMERAS[0]][0], atol=1)
    stats = json.loads((out / "meta" / "stats.json").read_text())["observation.state"]
    kept = np.concatenate([states(tiny_dataset)[13:19], states(tiny_dataset)[22:30]])
    np.testing.assert_allclose(stats["mean"], kept.mean(axis=0), rtol=1e-6)
    assert stats["count"] == [14]


def test_link_shares_the_video_files_and_bad_spans_are_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    out = lerobot_io.write_subset(tiny_dataset, [2], tmp_path / "linked", link=True)
    for video in (out / "videos").rglob("*.mp4"):
        assert os.path.samefile(video, tiny_dataset / video.relative_to(out))
    with pytest.raises(CurateError, match="a frame span is empty or outside its episode"):
        lerobot_io.write_subset(tiny_dataset, [Span(0, 5, 5)], tmp_path / "empty")
    with pytest.raises(CurateError, match="a frame span is empty or outside its episode"):
        lerobot_io.write_subset(tiny_dataset, [Span(2, 0, 9)], tmp_path / "past_the_end")
    with pytest.raises(CurateError, match="--reencode exports whole episodes"):
        lerobot_io.write_subset(tiny_dataset, [Span(0, 1)], tmp_path / "both", reencode=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked"]  # nothing half-written
