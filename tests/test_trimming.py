"""`curate filter --trim`: spans from per-frame scores, exported without re-encoding, frames identical to the source's."""

import json
from pathlib import Path

import numpy as np
import pytest
from tiny import CAMERAS, TINY_EPISODES
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from typer.testing import CliRunner

from curate import lerobot_io
from curate.cli import app
from curate.index import Index, ScoreRow
from curate.trimming import useful_span

FRAMES = (0, 3, 6, 9)


@pytest.mark.parametrize(
    ("progress", "success", "margin", "span"),
    [
        ((0.1, 0.1, 0.5, 0.9), (0.0, 0.0, 0.8, 0.9), 1, (2, 8)),  # idle until frame 3, successful from frame 6
        ((0.1, 0.1, 0.5, 0.9), (0.0, 0.0, 0.8, 0.9), 0, (3, 7)),
        ((0.1, 0.1, 0.5, 0.9), (0.0, 0.0, 0.8, 0.9), 5, (0, 10)),  # the margin stops at the episode's ends
        ((0.1, 0.4, 0.6, 0.9), (0.0, 0.0, 0.0, 0.0), 0, (0, 10)),  # rising from the start, never successful: all
        ((0.2, 0.2, 0.2, 0.2), (0.0, 0.0, 0.0, 0.0), 0, (0, 10)),  # never rises: nothing to cut
        ((0.1, 0.1, 0.1, 0.9), (0.9, 0.0, 0.0, 0.9), 0, (0, 10)),  # success before any progress: scores disagree, keep all
    ],
)
def test_useful_span_cuts_the_idle_start_and_the_tail_after_success(progress: tuple, success: tuple, margin: int, span: tuple) -> None:
    assert useful_span(FRAMES, progress, success, 10, margin) == span


def test_filter_trim_exports_the_spans_with_the_sources_frames(tiny_dataset: Path, tmp_path: Path) -> None:
    index = tmp_path / "t.duckdb"
    dataset = str(tiny_dataset.resolve())
    with Index(index) as db:
        db.write([
            ScoreRow(dataset, 0, "do it", "m@1", "run", TINY_EPISODES[0][0], 10, 0.9, 0.4, 0.9, FRAMES, (0.1, 0.1, 0.5, 0.9), (0.0, 0.0, 0.8, 0.9)),
            ScoreRow(dataset, 3, "do it", "m@1", "run", TINY_EPISODES[3][0], 11, 0.8, 0.4, 0.9, (0, 5, 10), (0.1, 0.5, 0.8), (0.0, 0.2, 0.9)),
        ])
    out = tmp_path / "trimmed"
    result = CliRunner().invoke(app, ["filter", "--index", str(index), "--instruction", "do it", "--top-k", "2", "--trim", "--trim-margin", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "curate_selection.json").read_text())
    assert [e["source_frames"] for e in manifest["episodes"]] == [[2, 8], [0, 11]] and manifest["trim_margin"] == 1
    subset = LeRobotDataset("local/trimmed", root=out)
    assert [int(e["length"]) for e in subset.meta.episodes] == [6, 11]
    ours = lerobot_io.decode_frames(lerobot_io.open_dataset(out), [(0, list(range(6)))], list(CAMERAS))[0]
    theirs = lerobot_io.decode_frames(lerobot_io.open_dataset(tiny_dataset), [(0, list(range(2, 8)))], list(CAMERAS))[0]
    assert all(np.array_equal(ours[c], theirs[c]) for c in CAMERAS)
    refused = CliRunner().invoke(app, ["filter", "--index", str(index), "--instruction", "do it", "--top-k", "2", "--trim", "--reencode", "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "--reencode exports whole episodes" in refused.output
    assert not (tmp_path / "x").exists()
