"""`curate rm ensemble`: tiny models trained apart, joined into one checkpoint that averages their outputs and scores
through the paths users run."""

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from test_rewardmodel import TINY, pool
from typer.testing import CliRunner

from curate.cli import app
from rewardmodel.config import CurateRewardConfig
from rewardmodel.errors import RewardModelError
from rewardmodel.model import load_model
from rewardmodel.train import TrainConfig, train

runner = CliRunner()


def members(tmp_path: Path) -> list[Path]:
    paths = []
    for seed in (0, 1):
        model, _ = train(pool(), CurateRewardConfig(**TINY, match_weight=1.0), TrainConfig(steps=2, batch_size=4, seed=seed))
        model.save_pretrained(tmp_path / f"m{seed}")
        paths.append(tmp_path / f"m{seed}")
    return paths


def test_an_ensemble_averages_its_members_in_every_output_and_scores_from_the_cli(tiny_dataset: Path, tmp_path: Path) -> None:
    a, b = members(tmp_path)
    result = runner.invoke(app, ["rm", "ensemble", str(a), str(b), "--out", str(tmp_path / "ens")])
    assert result.exit_code == 0, result.output
    ensemble, first, second = load_model(tmp_path / "ens"), load_model(a), load_model(b)
    assert ensemble.config.members == 2
    frames = torch.from_numpy(np.stack([t.frames[:4] for t in pool()[:3]]))
    instructions = ["open the drawer", "press the button", "open the drawer"]
    with torch.inference_mode():
        for joined, x, y in zip(ensemble.predict_all(frames, instructions), first.predict_all(frames, instructions), second.predict_all(frames, instructions), strict=True):
            assert torch.allclose(joined, (x + y) / 2, atol=1e-6)
        grids = [np.arange(t + 1) for t in range(4)]
        for joined, x, y in zip(ensemble.predict_grids(frames[0], grids, instructions[:2]), first.predict_grids(frames[0], grids, instructions[:2]), second.predict_grids(frames[0], grids, instructions[:2]), strict=True):
            assert torch.allclose(joined, (x + y) / 2, atol=1e-6)
        mean = (first.preference_probability(frames[:1], frames[1:2], ["x"]) + second.preference_probability(frames[:1], frames[1:2], ["x"])) / 2
        assert torch.allclose(ensemble.preference_probability(frames[:1], frames[1:2], ["x"]), mean, atol=1e-6)
    log = json.loads((tmp_path / "ens" / "training.json").read_text())
    assert [m["path"] for m in log["members"]] == [str(a.resolve()), str(b.resolve())]

    index = tmp_path / "i.duckdb"
    scored = runner.invoke(app, ["score", str(tiny_dataset), "--index", str(index), "--model", str(tmp_path / "ens"), "--frames", "4", "--instruction", "open the drawer"])
    assert scored.exit_code == 0, scored.output
    with duckdb.connect(str(index), read_only=True) as db:
        matches = [m for (m,) in db.execute("SELECT match_prob FROM scores").fetchall()]
    assert len(matches) == 6 and all(0 <= m <= 1 for m in matches)  # 4 episodes under their own words, 2 more under "open the drawer"
    with pytest.raises(RewardModelError, match="an ensemble is not trained as one"):
        ensemble.train().forward(None)


def test_ensemble_refuses_one_member_an_ensemble_mixed_configs_a_repeated_member_and_its_own_input(tmp_path: Path) -> None:
    a, b = members(tmp_path)
    train(pool(), CurateRewardConfig(**TINY, match_weight=1.0, match_source="own"), TrainConfig(steps=1, batch_size=2))[0].save_pretrained(tmp_path / "own")
    cases = [
        ([str(a)], "an ensemble needs at least 2 checkpoints, got 1"),
        ([str(a), str(tmp_path / "own")], "differs from"),
        ([str(a), str(tmp_path / "nope")], "is not a reward model checkpoint"),
        ([str(a), str(b), str(a)], "has the same weights as"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["rm", "ensemble", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "out").exists()
    assert runner.invoke(app, ["rm", "ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]).exit_code == 0
    nested = runner.invoke(app, ["rm", "ensemble", str(a), str(tmp_path / "ens"), "--out", str(tmp_path / "out")])
    assert nested.exit_code == 2 and "is already an ensemble of 2" in nested.output
    onto = runner.invoke(app, ["rm", "ensemble", str(a), str(b), "--out", str(b)])
    assert onto.exit_code == 2 and "is an input of this command" in onto.output
    assert load_model(b).config.members == 1


def test_a_member_saved_before_a_config_field_existed_joins_one_saved_after(tmp_path: Path) -> None:
    a, b = members(tmp_path)
    config = json.loads((a / "config.json").read_text())
    del config["members"]  # as checkpoints saved before `members` existed: it reads as its default, 1
    (a / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["rm", "ensemble", str(a), str(b), "--out", str(tmp_path / "ens")])
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "ens").config.members == 2
