"""`curate rm train` and `curate rm eval` on a tiny LeRobot dataset, through the CLI users run."""

import json
from pathlib import Path

from typer.testing import CliRunner

from curate.cli import app


def test_rm_train_then_eval_by_task(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "rm"
    args = ["rm", "train", "--dataset", str(tiny_dataset), "--out", str(out), "--steps", "2", "--batch-size", "2", "--image-size", "16", "--frames", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "training.json", "training_curves.png"}
    log = json.loads((out / "training.json").read_text())
    assert log["trajectories"] == 8  # 4 episodes x 2 cameras
    assert [h["step"] for h in log["history"]] == [1.0, 2.0]

    result = CliRunner().invoke(app, ["rm", "eval", str(tiny_dataset), "--model", str(out), "--camera", "side", "--frames", "4", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert set(metrics) == {"open the drawer", "press the button", "all"}
    assert metrics["all"]["episodes"] == 4.0
    assert -1.0 <= metrics["all"]["kendall_tau_a"] <= 1.0

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists; choose another path or pass --overwrite" in again.output


def test_rm_eval_rejects_a_missing_model_and_an_unknown_ablation(tiny_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rm", "eval", str(tiny_dataset), "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "is not a reward model checkpoint" in result.output
    result = CliRunner().invoke(app, ["rm", "train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "x"), "--ablation", "bogus"])
    assert result.exit_code == 2 and "unknown --ablation 'bogus'; valid: none, progress-only, preference-only" in result.output
