"""The library side of `curate bc`: train a behaviour-cloning policy on a LeRobot dataset, save it, roll it out."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.torch import load_model, save_model

from curate import lerobot_io, provenance
from curate.errors import CurateError
from curate.outputs import atomic_folder, check_target
from policies.bc import BCConfig, BCPolicy, train_bc
from policies.evaluation import EvalResult, evaluate_policy

STATE, ACTION = "observation.state", "action"
POLICY_CONFIG = "policy.json"
POLICY_WEIGHTS = "policy.safetensors"


def train_policy(
    dataset: str | Path, out: Path, config: BCConfig, overwrite: bool = False, weights: Path | None = None, horizon: int = 10
) -> tuple[BCPolicy, list[float]]:
    """Train on every frame of `dataset` (normalised with its own state stats) and save to `out`; `weights`: a
    `curate weights` parquet, turned into per-frame weights by lerobot's RA-BC weighter over `horizon` frames."""
    check_target(out, overwrite, inputs=[dataset, *([weights] if weights else [])])
    ds = lerobot_io.open_dataset(dataset)
    columns = lerobot_io.read_columns(ds, [STATE, ACTION, "index"])
    mean, std = lerobot_io.feature_stats(ds, STATE)
    frame_weights = None
    if weights is not None:
        check_weights_dataset(weights, lerobot_io.dataset_root(ds))
        frame_weights = rabc_weights(weights, columns["index"].reshape(-1), horizon)
    try:
        policy, losses = train_bc(columns[STATE], columns[ACTION], mean, std, config, frame_weights)
    except ValueError as err:
        raise CurateError(str(err)) from None
    meta = {
        "state_dim": int(columns[STATE].shape[1]), "action_dim": int(columns[ACTION].shape[1]), "config": asdict(config),
        "dataset": str(lerobot_io.dataset_root(ds)), "frames": int(len(columns[STATE])), "episodes": int(ds.meta.total_episodes),
        "weights": None if weights is None else {"progress": str(Path(weights).resolve()), "horizon": horizon, "mean": float(frame_weights.mean()), "min": float(frame_weights.min()), "max": float(frame_weights.max())},
        "final_loss": losses[-1], "code_version": provenance.code_version(), "created": provenance.now(),
    }
    with atomic_folder(out, overwrite, inputs=[dataset]) as partial:
        partial.mkdir()
        save_model(policy, str(partial / POLICY_WEIGHTS))
        (partial / POLICY_CONFIG).write_text(json.dumps(meta, indent=2))
    return policy, losses


def check_weights_dataset(progress: Path, root: Path) -> None:
    """The weights were written for this dataset (frame indices of another would silently line up)."""
    import pyarrow.parquet as pq

    from curate.rabc import DATASET_KEY

    if not Path(progress).is_file():
        raise CurateError(f"weights file {progress} does not exist; write it with `curate weights DATASET --out DIR` (DIR/progress.parquet)")
    written_for = (pq.read_schema(progress).metadata or {}).get(DATASET_KEY)
    if written_for is not None and written_for.decode() != lerobot_io.dataset_fingerprint(root):
        raise CurateError(f"{progress} was written for another dataset (or this one has changed); run `curate weights {root}` for it")


def rabc_weights(progress: Path, index: np.ndarray, horizon: int) -> np.ndarray:
    """Each frame's RA-BC weight (lerobot's own weighter: the progress its next `horizon` frames make)."""
    from lerobot.rewards.sarm.rabc import RABCWeights

    if horizon < 1:
        raise CurateError(f"--horizon must be at least 1 frame, got {horizon}")
    weighter = RABCWeights(progress_path=progress, chunk_size=horizon, device="cpu")
    known = set(weighter.progress_lookup)
    missing = int(sum(int(i) not in known for i in index))
    if missing:
        raise CurateError(f"{progress} has no progress for {missing} of {len(index)} frames; it was written for another dataset: run `curate weights` on this one")
    weights, _ = weighter.compute_batch_weights({"index": index})
    return weights.numpy()


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

