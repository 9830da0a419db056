"""`curate rm train` and `curate rm eval` on a tiny LeRobot dataset, through the CLI users run."""

import json
import shutil
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from curate.cli import app


def test_rm_train_then_eval_by_task(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "rm"
    args = ["rm", "train", "--dataset", str(tiny_dataset), "--out", str(out), "--steps", "2", "--batch-size", "2", "--image-size", "16", "--frames", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "training.json", "training_curves.png", ".curate_output.json"}
    log = json.loads((out / "training.json").read_text())
    assert log["trajectories"] == 8  # 4 episodes x 2 cameras
    assert json.loads((out / "config.json").read_text())["mirror_average"] is True  # the default; --no-mirror-average: one view
    assert [h["step"] for h in log["history"]] == [1.0, 2.0]

    result = CliRunner().invoke(app, ["rm", "eval", str(tiny_dataset), "--model", str(out), "--camera", "side", "--frames", "4", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert set(metrics) == {"open the drawer", "press the button", "all"}
    assert metrics["all"]["episodes"] == 4.0
    assert -1.0 <= metrics["all"]["kendall_tau_a"] <= 1.0

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists; choose another path or pass --overwrite" in again.output

    # the same weights scored on one view (a folder of the same name) are another model to the index: no mixing
    one_view = tmp_path / "one_view" / "rm"
    shutil.copytree(out, one_view)
    config = json.loads((one_view / "config.json").read_text())
    (one_view / "config.json").write_text(json.dumps(config | {"mirror_average": False}))
    index = tmp_path / "i.duckdb"
    for model in (out, one_view):
        scored = CliRunner().invoke(app, ["score", str(tiny_dataset), "--index", str(index), "--model", str(model), "--frames", "4"])
        assert scored.exit_code == 0, scored.output
    with duckdb.connect(str(index), read_only=True) as db:
        by_model = dict(db.execute("SELECT model, list(final_progress ORDER BY episode_index) FROM scores GROUP BY model").fetchall())
    plain = next(m for m in by_model if not m.endswith("+mirror"))
    assert set(by_model) == {plain, plain + "+mirror"} and len(by_model[plain]) == len(by_model[plain + "+mirror"]) == 4


def test_rm_eval_rejects_a_missing_model_and_an_unknown_ablation(tiny_dataset: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rm", "eval", str(tiny_dataset), "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "is not a reward model checkpoint" in result.output
    result = CliRunner().invoke(app, ["rm", "train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "x"), "--ablation", "bogus"])
    assert result.exit_code == 2 and "unknown --ablation 'bogus'; valid: none, progress-only, preference-only" in result.output


def test_rm_train_under_torchrun_keeps_both_ranks_in_step(tiny_dataset: Path, tmp_path: Path) -> None:
    """2 processes, gloo on CPU: rank 0 writes one checkpoint; the two ranks end with identical weights; and they
    trained on different pairs, so the result is not the single-process one."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    common = ["--dataset", str(tiny_dataset), "--steps", "3", "--batch-size", "2", "--image-size", "16", "--frames", "4", "--threads", "1"]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "curate.cli", "rm", "train", *common, "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("saved ") == 1  # rank 0 only
    log = json.loads((tmp_path / "ddp" / "training.json").read_text())
    assert log["world_size"] == 2 and len(log["weight_digests"]) == 2 and len(set(log["weight_digests"])) == 1
    assert [h["step"] for h in log["history"]] == [1.0, 2.0, 3.0]
    assert not list(tmp_path.glob("ddp.*"))  # no partial folder left beside it

    single = CliRunner().invoke(app, ["rm", "train", *common, "--out", str(tmp_path / "single")])
    assert single.exit_code == 0, single.output
    assert json.loads((tmp_path / "single" / "training.json").read_text())["world_size"] == 1
    a, b = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "single" / "model.safetensors")
    assert a.keys() == b.keys() and any(not (a[k] == b[k]).all() for k in a)


def test_rm_train_killed_mid_run_resumes_from_its_last_state(tiny_dataset: Path, tmp_path: Path) -> None:
    """Killed with SIGKILL (a closed laptop, a lost machine): no checkpoint, a state beside it; the same command again
    resumes from that state, writes the checkpoint and removes the state."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from curate.reward_runs import resume_path

    out = tmp_path / "rm"
    args = ["rm", "train", "--dataset", str(tiny_dataset), "--out", str(out), "--steps", "60", "--batch-size", "2", "--image-size", "16", "--frames", "4", "--threads", "1", "--save-every", "2"]
    run = subprocess.Popen([sys.executable, "-m", "curate.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while not resume_path(out).exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the first state comes at step 2 of 60
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert resume_path(out).exists() and not out.exists()

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "resuming at step " in result.output and resume_path(out).name in result.output
    assert [h["step"] for h in json.loads((out / "training.json").read_text())["history"]] == [float(s) for s in range(1, 61)]
    assert not resume_path(out).exists() and sorted(p.name for p in tmp_path.iterdir()) == ["rm"]  # no state, no partial folder

    resume_path(tmp_path / "rm2").mkdir()  # something of the user's where the state would go
    result = CliRunner().invoke(app, [*args[:5], str(tmp_path / "rm2"), *args[6:]])
    assert result.exit_code == 2 and "is in the way of the training state curate keeps beside --out" in result.output
    assert not (tmp_path / "rm2").exists() and resume_path(tmp_path / "rm2").is_dir()
