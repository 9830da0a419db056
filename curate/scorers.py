"""Reward-model backends behind one interface: the shipped default, a `curate rm train` folder, or any reward model
in lerobot's registry (by folder, hub id, or `lerobot:TYPE`)."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from curate import provenance
from curate.errors import CurateError
from rewardmodel.config import MODEL_TYPE
from rewardmodel.model import DEFAULT_CHECKPOINT, load_model

# (frames of E episodes (E, K, H, W, 3) uint8, R instructions, owners (R,): the episode each is scored on) ->
# (progress (R, K), success probability (R, K), match probability (R,) or None for models without a match head), all
# in [0, 1]
ScoreFn = Callable[[torch.Tensor, list[str], torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
# One episode's frames (N, H, W, 3) uint8, grids (positions into them; the last is the whole sample), instructions ->
# progress (I, G) and success (I, G) at each grid's last frame, match (I,) or None (`CurateRewardModel.predict_grids`)
DenseFn = Callable[[torch.Tensor, list[np.ndarray], list[str]], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class Scorer:
    model_id: str  # what the index calls it: NAME@HASH12 (+mirror), so a retrained model never mixes with an old one
    kind: str
    source: str
    checkpoint_hash: str
    config: dict
    score: ScoreFn
    dense: DenseFn | None = None  # None: the model scores sampled frames only


def _folder_type(path: Path) -> str:
    """The reward-model type a checkpoint folder's config.json names; a clear error for anything else."""
    config = path / "config.json"
    if not config.is_file():
        raise CurateError(f"{path} is not a reward model folder (no config.json); pass a folder saved by `curate rm train`")
    try:
        content = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CurateError(f"{config} is not valid JSON; the checkpoint is corrupt") from None
    kind = content.get("type") if isinstance(content, dict) else None
    if not isinstance(kind, str):
        raise CurateError(f"{config} names no model \"type\"; pass a folder saved by `curate rm train` or a lerobot reward model")
    if kind != MODEL_TYPE:
        from lerobot.configs.rewards import RewardModelConfig

        known = sorted(RewardModelConfig.get_known_choices())
        if kind not in known:
            raise CurateError(f"{path} holds a {kind!r} model, not a reward model; use a folder from `curate rm train` or one of lerobot's reward models ({', '.join(known)})")
    return kind


def model_id(name: str, digest: str) -> str:
    """What the index calls a model with these weights: NAME@HASH12."""
    return f"{name}@{digest[:12]}"


def curate_model_id(name: str, digest: str, config: dict) -> str:
    """A curate checkpoint's NAME@HASH12, + `+mirror` when its config averages each clip with its mirror image, and
    + `+calHASH6` when it calibrates the success head: the same weights scored another way give other scores, which
    must not mix in the index."""
    calibration = (config.get("success_scale", 1.0), config.get("success_bias", 0.0))
    mirror = "+mirror" if config.get("mirror_average", False) else ""
    calibrated = "" if calibration == (1.0, 0.0) else "+cal" + hashlib.sha256(repr(calibration).encode()).hexdigest()[:6]
    return model_id(name, digest) + mirror + calibrated


def shipped_model_id() -> str:
    """The index's name for the shipped default model."""
    return _curate_folder_id(DEFAULT_CHECKPOINT, "default")


def _curate_folder_id(path: Path, name: str) -> str:
    config = json.loads((path / "config.json").read_text())
    return curate_model_id(name, provenance.file_sha256(path / "model.safetensors"), config)


def index_id_of(model: str) -> str | None:
    """The index's name for the scores `curate score --model MODEL` writes, when MODEL is `default` or a checkpoint
    folder (None for anything else), read from its files without loading it: so rank, filter, report and weights
    take the same --model as score."""
    if model == "default":
        return shipped_model_id()
    path = Path(model).expanduser()
    weights = path / "model.safetensors"
    if not weights.is_file():
        return None
    try:
        kind = _folder_type(path)
    except CurateError:
        return None
    if kind == MODEL_TYPE:
        return _curate_folder_id(path, path.resolve().name)
    return model_id(path.resolve().name, provenance.file_sha256(weights))


def open_scorer(model: str | None = None, device: str = "cpu") -> Scorer:
    """`None`/`default`: the shipped model; a folder: by its config's type; `lerobot:TYPE` or a hub id: lerobot's
    registry (needs the network for hub weights)."""
    if model in (None, "default"):
        return _curate_scorer(DEFAULT_CHECKPOINT, "default", device)
    path = Path(model).expanduser()
    if path.is_dir():
        kind = _folder_type(path)
        if kind == MODEL_TYPE:
            return _curate_scorer(path, path.resolve().name, device)
        return _lerobot_scorer(kind, str(path.resolve()), device)
    if model.startswith("lerobot:"):
        return _lerobot_scorer(model.removeprefix("lerobot:"), None, device)
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        return _lerobot_scorer(None, model, device)
    raise CurateError(f"unknown model {model!r}: not a folder, `lerobot:TYPE` or hub id; omit --model for the shipped default")


def _curate_scorer(path: Path, name: str, device: str) -> Scorer:
    reward_model = load_model(path, device)
    digest = provenance.file_sha256(path / "model.safetensors")
    with torch.inference_mode():  # loads what the model loads lazily (its text encoder) now, not in the first batch
        reward_model.predict(torch.zeros(1, 1, 8, 8, 3, dtype=torch.uint8), ["warm-up"])

    @torch.inference_mode()
    def score(frames: torch.Tensor, instructions: list[str], owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return reward_model.predict_all(frames, instructions, owners)

    @torch.inference_mode()
    def dense(frames: torch.Tensor, grids: list[np.ndarray], instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return reward_model.predict_grids(frames, grids, instructions)

    config = json.loads((path / "config.json").read_text())
    return Scorer(curate_model_id(name, digest, config), MODEL_TYPE, str(path.resolve()), digest, config, score, dense)


def _lerobot_scorer(kind: str | None, source: str | None, device: str) -> Scorer:
    """A model from lerobot's reward registry. Progress at frame t is its `compute_reward` on frames <= t (so frame t
    sees only the past, as with ours); it has no separate success head, so success probability = progress."""
    from lerobot.configs.rewards import RewardModelConfig
    from lerobot.rewards.factory import get_reward_model_class, make_reward_model_config

    try:
        if source is not None:
            config = RewardModelConfig.from_pretrained(source)
            config.device = device
            reward_model = get_reward_model_class(config.type).from_pretrained(source, config=config)
        else:
            config = make_reward_model_config(kind, device=device)
            reward_model = get_reward_model_class(config.type)(config)
    except Exception as err:  # draccus, safetensors and hub errors have many types
        raise CurateError(f"cannot load reward model {source or kind!r} from lerobot's registry ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); check the type or path") from None
    reward_model.eval()
    image_key = getattr(config, "image_key", "observation.images")
    task_key = getattr(config, "task_key", "task")

    @torch.inference_mode()
    def score(frames: torch.Tensor, instructions: list[str], owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        video = frames[owners].permute(0, 1, 4, 2, 3).float().div(255).to(device)  # (R, K, C, H, W) in [0, 1]
        per_frame = [reward_model.compute_reward({image_key: video[:, : t + 1], task_key: instructions}).float().reshape(-1) for t in range(video.shape[1])]
        progress = torch.stack(per_frame, 1).clamp(0, 1).cpu()
        return progress, progress.clone(), None

    weights = Path(source) / "model.safetensors" if source and Path(source).is_dir() else None
    digest = provenance.file_sha256(weights) if weights and weights.is_file() else (source or kind or "")
    name = Path(source).name if source else kind
    return Scorer(model_id(name, digest) if weights else f"{config.type}:{name}", f"lerobot:{config.type}", source or kind or "", digest, json.loads(json.dumps(config.__dict__, default=str)), score)
