"""lerobot_io round-trips a tiny dataset built through LeRobotDataset.create: listing, decoding, subsets, atomicity."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny import CAMERAS, TINY_EPISODES, frame_image, tiny_episode
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from curate import lerobot_io
from curate.errors import CurateError
from curate.records import quality_label


def test_list_episodes_reports_lengths_tasks_cameras_and_labels(tiny_dataset: Path) -> None:
    episodes = lerobot_io.list_episodes(lerobot_io.open_dataset(tiny_dataset))
    assert [e.episode_index for e in episodes] == [0, 1, 2, 3]
    assert [e.length for e in episodes] == [10, 12, 8, 11]
    assert [e.task for e in episodes] == [task for task, _, _ in TINY_EPISODES]
    assert all(e.camera_keys == CAMERAS for e in episodes)
    # first success at 4/10, never, 6/8 (late), 2/11
    assert [e.quality for e in episodes] == ["successful", "failure", "suboptimal", "successful"]
    assert episodes[0].success.tolist() == [False] * 4 + [True] * 6
    assert [len(e.success) for e in episodes] == [10, 12, 8, 11]  # each episode's own frames


def test_decode_frames_returns_the_requested_frames_of_each_camera(tiny_dataset: Path) -> None:
    ds = lerobot_io.open_dataset(tiny_dataset)
    requests = [(0, [0, 5, 9]), (2, [7, 1]), (3, [0])]
    decoded = lerobot_io.decode_frames(ds, requests, list(CAMERAS))
    for (episode, indices), frames in zip(requests, decoded, strict=True):
        assert set(frames) == set(CAMERAS)
        for c, camera in enumerate(CAMERAS):
            assert frames[camera].shape == (len(indices), 32, 32, 3) and frames[camera].dtype == np.uint8
            expected = np.stack([frame_image(episode, i, c) for i in indices]).astype(int)
            # AV1 is lossy, but flat colours 16 levels apart come back within a few levels
            assert np.abs(frames[camera].astype(int) - expected).max() <= 6


def test_resolve_camera_defaults_to_first_video_key_and_accepts_short_names(tiny_dataset: Path) -> None:
    ds = lerobot_io.open_dataset(tiny_dataset)
    assert lerobot_io.resolve_camera(ds, None) == "observation.images.front"
    assert lerobot_io.resolve_camera(ds, "side") == "observation.images.side"
    with pytest.raises(CurateError, match="unknown camera key 'wrist'; this dataset has: observation.images.front"):
        lerobot_io.resolve_camera(ds, "wrist")


def test_bad_paths_and_frame_indices_give_clear_errors(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(CurateError, match="does not exist"):
        lerobot_io.open_dataset(tmp_path / "nowhere")
    with pytest.raises(CurateError, match="not a LeRobot dataset root"):
        lerobot_io.open_dataset(tmp_path)
    ds = lerobot_io.open_dataset(tiny_dataset)
    with pytest.raises(CurateError, match=r"frame indices \[8\] are outside episode 2 \(length 8\)"):
        lerobot_io.decode_frames(ds, [(2, [0, 8])], [CAMERAS[0]])


def test_corrupt_or_missing_video_is_reported_by_file(tiny_dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    video = next((broken / "videos" / CAMERAS[0]).rglob("*.mp4"))
    video.write_bytes(video.read_bytes()[:200])
    ds = lerobot_io.open_dataset(broken)
    with pytest.raises(CurateError, match="cannot decode video file .*corrupt"):
        lerobot_io.decode_frames(ds, [(0, [0])], [CAMERAS[0]])
    video.unlink()
    with pytest.raises(CurateError, match="is missing"):
        lerobot_io.decode_frames(ds, [(0, [0])], [CAMERAS[0]])


def test_write_subset_keeps_exactly_the_chosen_episodes_bit_identical(tiny_dataset: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(tiny_dataset) for p in tiny_dataset.rglob("*"))
    out = lerobot_io.write_subset(tiny_dataset, [3, 1], tmp_path / "subset")
    subset = LeRobotDataset("local/subset", root=out)
    assert subset.meta.total_episodes == 2
    assert [int(e["length"]) for e in subset.meta.episodes] == [12, 11]
    assert [list(e["tasks"]) for e in subset.meta.episodes] == [["open the drawer"], ["press the button"]]
    states = np.asarray(subset.hf_dataset.with_format("numpy")["observation.state"])
    expected = np.concatenate([tiny_episode(i, *TINY_EPISODES[i]).arrays["observation.state"] for i in (1, 3)])
    assert states.dtype == np.float32 and np.array_equal(states, expected)
    frames = lerobot_io.decode_frames(lerobot_io.open_dataset(out), [(1, [2])], [CAMERAS[0]])[0][CAMERAS[0]]
    assert np.abs(frames[0].astype(int) - frame_image(3, 2, 0)).max() <= 6
    assert sorted(p.relative_to(tiny_dataset) for p in tiny_dataset.rglob("*")) == before  # source untouched
    with pytest.raises(CurateError, match="already exists; choose another path or pass --overwrite"):
        lerobot_io.write_subset(tiny_dataset, [0], out)
    with pytest.raises(CurateError, match=r"episodes \[7\] are not in the dataset"):
        lerobot_io.write_subset(tiny_dataset, [7], tmp_path / "other")


def test_interrupted_write_leaves_nothing_at_the_target(tmp_path: Path) -> None:
    def episodes():
        yield tiny_episode(0, "open the drawer", 5, None)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lerobot_io.write_dataset(tmp_path / "ds", episodes(), fps=10, camera_keys=CAMERAS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("success", "label"),
    [([0, 0, 0, 0, 0], "failure"), ([0, 1, 1, 0, 0], "successful"), ([0, 0, 1, 1, 1], "successful"), ([0, 0, 0, 1, 0], "suboptimal")],
)
def test_quality_comes_from_when_success_first_happens(success: list[int], label: str) -> None:
    assert quality_label(np.array(success, dtype=bool)) == label
