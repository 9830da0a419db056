"""The README's demo, run line for line from the Makefile in a temporary folder: its export holds only successful
drawer openings (what the demo promises), selected by the shipped reward model from the demo's own play data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curate import lerobot_io

ROOT = Path(__file__).resolve().parents[1]


def demo_lines(workdir: Path) -> list[str]:
    recipe = (ROOT / "Makefile").read_text().split("\ndemo: setup\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.replace("\\\n", " ").splitlines() if line.strip()]
    curate = str(Path(sys.executable).parent / "curate")
    return [line.replace(".venv/bin/curate", curate).replace("data/", f"{workdir}/") for line in lines]


@pytest.mark.slow
def test_the_demo_exports_only_successful_drawer_openings(tmp_path: Path) -> None:
    for line in demo_lines(tmp_path):
        result = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
    manifest = json.loads((tmp_path / "demo_drawer_best" / "curate_selection.json").read_text())
    quality = {e.episode_index: (e.task, e.quality) for e in lerobot_io.list_episodes(lerobot_io.open_dataset(tmp_path / "demo"))}
    exported = [quality[e["source_episode_index"]] for e in manifest["episodes"]]
    assert exported and all(pair == ("Open a drawer", "successful") for pair in exported), exported
    assert (tmp_path / "demo_report.html").stat().st_size > 10_000
