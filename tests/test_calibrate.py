"""`curate rm calibrate`: Platt scaling of the success head on labelled episodes, through the CLI users run."""

import json
from dataclasses import replace
from pathlib import Path

import torch
from tiny import CAMERAS, TINY_EPISODES, tiny_episode
from typer.testing import CliRunner

from curate.cli import app
from curate.lerobot_io import write_dataset
from curate.scorers import curate_model_id
from rewardmodel.model import CurateRewardModel, load_model


def test_calibrate_writes_the_same_weights_with_a_fitted_success_head(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "calibrated"
    args = ["rm", "calibrate", "--model", str(tiny_model), "--dataset", str(tiny_dataset), "--out", str(out), "--frames", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "calibrated on 8 episodes (2 failed)" in result.output  # 4 episodes x 2 cameras; episode 1 never succeeds
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "calibration.json", ".curate_output.json"}
    assert (out / "model.safetensors").read_bytes() == (tiny_model / "model.safetensors").read_bytes()
    fit = json.loads((out / "calibration.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert (config["success_scale"], config["success_bias"]) == (fit["scale"], fit["bias"]) != (1.0, 0.0)
    assert fit["bce_after"] <= fit["bce_before"] and fit["episodes"] == 8 and fit["failures"] == 2

    # progress as before (the tiny model has no match head); success is the fitted transform of the same logits
    before, after = load_model(tiny_model), load_model(out)
    frames = torch.randint(0, 255, (3, 4, 32, 32, 3), dtype=torch.uint8)
    words = ["open the drawer", "press the button", "open the drawer"]
    (p0, s0, _), (p1, s1, _) = before.predict_all(frames, words), after.predict_all(frames, words)
    assert torch.equal(p0, p1)
    logits = before.success_logits(frames, words)
    assert torch.allclose(s0, torch.sigmoid(logits).mean(0), atol=1e-6)
    assert torch.allclose(s1, torch.sigmoid(fit["scale"] * logits + fit["bias"]).mean(0), atol=1e-6)

    # the index keeps the calibrated model's scores apart from the same weights' uncalibrated ones
    ids = {curate_model_id("rm", "ab" * 32, json.loads((folder / "config.json").read_text())) for folder in (tiny_model, out)}
    assert len(ids) == 2 and "rm@abababababab" in ids

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    inside = CliRunner().invoke(app, [*args[:-4], "--out", str(tiny_model), "--frames", "4"])
    assert inside.exit_code == 2 and "is an input of this command" in inside.output


def test_success_logits_are_what_every_view_and_member_averages(tiny_model: Path) -> None:
    model = load_model(tiny_model)
    frames = torch.randint(0, 255, (2, 4, 32, 32, 3), dtype=torch.uint8)
    words = ["open the drawer", "press the button"]
    config = replace(model.config, mirror_average=True, success_scale=0.7, success_bias=-0.4)
    mirrored = CurateRewardModel(config).eval()
    mirrored.load_state_dict(model.state_dict())
    ensemble = CurateRewardModel(replace(config, members=2)).eval()
    for member in ensemble.members:
        member.load_state_dict(model.state_dict())
    with torch.no_grad():
        ensemble.members[1].heads.success[-1].weight.mul_(2.0)  # members that differ
        for m, rows in ((mirrored, 2), (ensemble, 4)):
            logits = m.success_logits(frames, words)
            assert logits.shape == (rows, 2, 4)
            assert torch.allclose(m.predict_all(frames, words)[1], m.success_probability(logits).mean(0), atol=1e-6)


def test_calibrate_refuses_episodes_of_one_kind_and_writes_nothing(tiny_model: Path, tmp_path: Path) -> None:
    successes = [spec for spec in TINY_EPISODES if spec[2] is not None]
    dataset = write_dataset(tmp_path / "only_successes", (tiny_episode(i, *s) for i, s in enumerate(successes)), fps=10, camera_keys=CAMERAS)
    out = tmp_path / "calibrated"
    result = CliRunner().invoke(app, ["rm", "calibrate", "--model", str(tiny_model), "--dataset", str(dataset), "--out", str(out), "--frames", "4"])
    assert result.exit_code == 2 and "calibration needs successful and failed episodes" in result.output and "no failed one" in result.output
    assert not out.exists() and not any(p.name.startswith(".") and "calibrated" in p.name for p in tmp_path.iterdir())


def test_an_ensemble_is_calibrated_after_joining(tiny_dataset: Path, tiny_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    calibrate = ["rm", "calibrate", "--dataset", str(tiny_dataset), "--frames", "4"]
    assert runner.invoke(app, [*calibrate, "--model", str(tiny_model), "--out", str(tmp_path / "cal")]).exit_code == 0
    mixed = runner.invoke(app, ["rm", "ensemble", str(tiny_model), str(tmp_path / "cal"), "--out", str(tmp_path / "ens")])
    assert mixed.exit_code == 2 and "calibrate their success heads differently" in mixed.output and not (tmp_path / "ens").exists()
    other = load_model(tiny_model)  # a second member: the same config, other weights
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    other.save_pretrained(tmp_path / "other")
    assert runner.invoke(app, ["rm", "ensemble", str(tiny_model), str(tmp_path / "other"), "--out", str(tmp_path / "ens")]).exit_code == 0
    result = runner.invoke(app, [*calibrate, "--model", str(tmp_path / "ens"), "--out", str(tmp_path / "ens_cal")])
    assert result.exit_code == 0, result.output
    joined = load_model(tmp_path / "ens_cal")
    assert joined.config.members == 2 and joined.config.success_scale == json.loads((tmp_path / "ens_cal" / "calibration.json").read_text())["scale"]
