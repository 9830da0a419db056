"""The library side of `curate bc`: train a behaviour-cloning policy on a LeRobot dataset, save it, roll it out."""

import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_model, save_model

from curate import lerobot_io, provenance
from curate.errors import CurateError
from curate.outputs import atomic_folder, check_target
from policies.bc import BCConfig, BCPolicy, train_bc
from policies.evaluation import EvalResult, evaluate_policy

STATE, ACTION = "observation.state", "action"
POLICY_CONFIG = "policy.json"
POLICY_WEIGHTS = "policy.safetensors"


def train_policy(dataset: str | Path, out: Path, config: BCConfig, overwrite: bool = False) -> tuple[BCPolicy, list[float]]:
    """Train on every frame of `dataset` (normalised with its own state stats) and save to `out`."""
    check_target(out, overwrite, inputs=[dataset])
    ds = lerobot_io.open_dataset(dataset)
    columns = lerobot_io.read_columns(ds, [STATE, ACTION])
    mean, std = lerobot_io.feature_stats(ds, STATE)
    try:
        policy, losses = train_bc(columns[STATE], columns[ACTION], mean, std, config)
    except ValueError as err:
        raise CurateError(str(err)) from None
    meta = {
        "state_dim": int(columns[STATE].shape[1]), "action_dim": int(columns[ACTION].shape[1]), "config": asdict(config),
        "dataset": str(lerobot_io.dataset_root(ds)), "frames": int(len(columns[STATE])), "episodes": int(ds.meta.total_episodes),
        "final_loss": losses[-1], "code_version": provenance.code_version(), "created": provenance.now(),
    }
    with atomic_folder(out, overwrite, inputs=[dataset]) as partial:
        partial.mkdir()
        save_model(policy, str(partial / POLICY_WEIGHTS))
        (partial / POLICY_CONFIG).write_text(json.dumps(meta, indent=2))
    return policy, losses


def load_policy(folder: Path) -> BCPolicy:
    config_file, weights = folder / POLICY_CONFIG, folder / POLICY_WEIGHTS
    if not config_file.is_file() or not weights.is_file():
        raise CurateError(f"{folder} is not a policy folder (needs {POLICY_CONFIG} and {POLICY_WEIGHTS}); make one with `curate bc train`")
    meta = json.loads(config_file.read_text())
    policy = BCPolicy(meta["state_dim"], meta["action_dim"], meta["config"]["hidden"], meta["config"]["layers"])
    try:
        load_model(policy, str(weights))
    except Exception as err:
        raise CurateError(f"cannot read {weights} ({type(err).__name__}); the policy file is corrupt: retrain it") from None
    return policy.eval()


def evaluate(folder: Path, task: str, episodes: int, seed: int = 10_000) -> EvalResult:
    policy = load_policy(folder)
    try:
        return evaluate_policy(policy.act, task, episodes, seed)
    except ValueError as err:
        raise CurateError(str(err)) from None

