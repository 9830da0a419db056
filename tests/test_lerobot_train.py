"""Compatibility: a subset exported by `curate filter` trains with lerobot's own `lerobot-train` (ACT, tiny settings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import known_index
from typer.testing import CliRunner

from curate.cli import app


@pytest.mark.slow
def test_an_exported_subset_trains_with_lerobot_train_act(tiny_dataset: Path, tmp_path: Path) -> None:
    index = known_index(tmp_path / "i.duckdb", tiny_dataset)
    subset = tmp_path / "best"
    exported = CliRunner().invoke(app, ["filter", "--instruction", "do the task", "--top-k", "2", "--index", str(index), "--out", str(subset)])
    assert exported.exit_code == 0, exported.output
    out = tmp_path / "act"
    args = [
        f"--dataset.repo_id=local/{subset.name}", f"--dataset.root={subset}", "--policy.type=act", "--policy.dim_model=64",
        "--policy.n_heads=2", "--policy.dim_feedforward=128", "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
        "--policy.chunk_size=4", "--policy.n_action_steps=4", "--policy.device=cpu", "--policy.push_to_hub=false",
        "--policy.pretrained_backbone_weights=null", "--wandb.enable=false", "--steps=2", "--batch_size=2", "--num_workers=0",
        "--save_freq=2", "--log_freq=1", f"--output_dir={out}",
    ]
    train = Path(sys.executable).parent / "lerobot-train"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    result = subprocess.run([str(train), *args], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = out / "checkpoints" / "000002"
    assert (checkpoint / "pretrained_model" / "model.safetensors").stat().st_size > 0
    assert json.loads((checkpoint / "training_state" / "training_step.json").read_text())["step"] == 2
    assert json.loads((checkpoint / "pretrained_model" / "config.json").read_text())["type"] == "act"
