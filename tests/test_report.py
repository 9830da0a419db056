"""`curate report` writes one self-contained page; headless Chromium renders it and we check what it shows."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tiny import known_index
from typer.testing import CliRunner

from curate.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by scripts/setup.sh")
def test_report_renders_histograms_curves_thumbnails_and_the_table(tiny_dataset: Path, tmp_path: Path) -> None:
    index = known_index(tmp_path / "k.duckdb", tiny_dataset)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--index", str(index), "--instruction", "do the task", "--out", str(out), "--show", "1"])
    assert result.exit_code == 0, result.output
    assert "http" not in out.read_text().replace("http-equiv", "")  # self-contained: nothing fetched
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)" data-images-total="(\d+)"', dom)
    # 1 histogram + best and worst episode: a curve and 2 frame thumbnails each (the index scored frames 0 and 5)
    assert loaded is not None and loaded.groups() == ("7", "7")
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td>tiny_ds</td><td class=\"num\">(\d)</td>", dom)
    assert rows == [("1", "3"), ("2", "0"), ("3", "2"), ("4", "1")]
    assert "4 episodes under 'do the task'" in dom and "final progress 0.950, success 0.900" in dom


def test_report_without_scores_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--index", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "does not exist; run `curate score DATASET" in result.output
    assert not (tmp_path / "r.html").exists()
