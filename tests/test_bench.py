"""`curate bench` end to end at tiny sizes: every measurement runs through the real scorer, index, export and
trainer, and the summary carries the keys of the JSON contract with sane values (no timing goals: shared machines)."""

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from curate.bench import BenchConfig, run_bench
from curate.cli import app

KEYS = {"score_vs_decode", "dense_vs_sampled", "rm_vs_siglip_cost", "index_rows", "rank_query_ms", "write_rows_per_s", "export_vs_copy", "reencode_vs_copy", "memory_growth_10x", "train_samples_per_s"}


def test_bench_measures_everything_at_tiny_sizes(tmp_path: Path) -> None:
    config = BenchConfig(out=tmp_path / "bench", quick=True, size=32, episodes=2, length=12, index_rows=3000, train_steps=2)
    results = run_bench(config)
    summary, details = results["summary"], results["details"]
    assert set(summary) == KEYS
    assert all(math.isfinite(v) and v > 0 for v in summary.values()), summary
    assert details["score_vs_decode"]["episodes"] == 20  # the large dataset: 10x the small one
    assert details["score_vs_decode"]["rounds"] == 3  # the best of three rounds of each
    assert (details["memory"]["small_episodes"], details["memory"]["large_episodes"]) == (2, 20)
    assert details["export_vs_copy"]["episodes"] >= 1
    assert details["dense_vs_sampled"]["episodes"] == 2  # dense and 8-frame scoring of the small dataset
    assert summary["rm_vs_siglip_cost"] < 1  # the compact model is far smaller than SigLIP-base's image tower
    assert not [p for p in (tmp_path / "bench").iterdir() if p.is_dir() and p.name.startswith("tmp")]  # work files removed

    # the CLI reuses the datasets just written (same spec) and writes the same JSON keys
    out = tmp_path / "bench.json"
    args = ["bench", "--out", str(tmp_path / "bench"), "--quick", "--size", "32", "--episodes", "2", "--length", "12", "--index-rows", "3000", "--train-steps", "2", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written.pop("about") == "written by curate: curate bench" and set(written) == KEYS
    assert "score_vs_decode" in result.output


def test_bench_rejects_a_bad_size() -> None:
    result = CliRunner().invoke(app, ["bench", "--size", "8"])
    assert result.exit_code == 2 and "--size must be between 32 and 1024 pixels" in result.output
