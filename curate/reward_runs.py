"""The library side of `curate rm`: train a reward model on LeRobot datasets, evaluate one on a dataset by task."""

import json
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from curate import provenance
from curate.errors import CurateError
from curate.outputs import atomic_folder, check_target
from curate.plots import training_curves
from curate.rm_data import load_trajectories
from rewardmodel import distributed, resume
from rewardmodel.calibrate import Calibration, fit_calibration
from rewardmodel.config import CurateRewardConfig
from rewardmodel.evaluate import preference_accuracy, score_trajectories
from rewardmodel.match_training import MatchConfig, cache_features, train_match, with_imagenet_match
from rewardmodel.metrics import alignment_metrics
from rewardmodel.model import DEFAULT_CHECKPOINT, CurateRewardModel, load_model
from rewardmodel.records import Trajectory
from rewardmodel.train import TrainConfig, train

TRAINING_LOG = "training.json"


def load_many(datasets: Sequence[str | Path], image_size: int, cameras: Sequence[str] | None, on_episodes: Callable[[int], None] | None = None) -> list[Trajectory]:
    trajectories: list[Trajectory] = []
    for dataset in datasets:
        trajectories += load_trajectories(dataset, image_size, cameras, on_episodes=on_episodes)
    return trajectories


def model_config(backbone: str, image_size: int, frames: int, match_weight: float, ablation: str, match_source: str = "shared", mirror_average: bool = True) -> CurateRewardConfig:
    """`curate rm train`'s model settings: the backbone and sizes, with the ablation's loss weights, and whether
    predictions average the clip and its mirror image (training's augmentation mirrors half the clips)."""
    from rewardmodel.config import ABLATIONS

    if ablation not in ABLATIONS:
        raise CurateError(f"unknown --ablation {ablation!r}; valid: {', '.join(ABLATIONS)}")
    if match_source == "imagenet":
        raise CurateError("--match-source imagenet is trained on top of a trained checkpoint: train with shared or own, then run `curate rm match`")
    try:
        return CurateRewardConfig(backbone=backbone, image_size=image_size, num_frames=frames, match_source=match_source, mirror_average=mirror_average, **{"match_weight": match_weight} | ABLATIONS[ablation])
    except ValueError as err:
        raise CurateError(str(err)) from None


def train_model(
    datasets: Sequence[str | Path],
    model_config: CurateRewardConfig,
    config: TrainConfig,
    out: Path,
    eval_datasets: Sequence[str | Path] = (),
    cameras: Sequence[str] | None = None,
    on_load: Callable[[int], None] | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
    save_every: int = 500,
) -> tuple[CurateRewardModel, list[dict[str, float]]]:
    """Train on every (episode, camera) of `datasets` and save the checkpoint, a training log and a curves PNG to
    `out` (written beside it first, moved into place when complete; under torchrun by rank 0 alone). Every
    `save_every` steps the training state goes to `resume_path(out)`; a rerun with the same settings continues from it."""
    code_version = provenance.code_version()  # the code that trains, even if the checkout moves on meanwhile
    state = resume_path(out)
    if state.exists() and not state.is_file():
        raise CurateError(f"{state} is in the way of the training state curate keeps beside --out (it is not a file); move it or choose another --out")
    trajectories = load_many(datasets, model_config.image_size, cameras, on_load)
    main = distributed.rank() == 0  # under torchrun, rank 0 alone evaluates and writes
    eval_trajectories = load_many(eval_datasets, model_config.image_size, cameras, on_load) if eval_datasets and main else None
    sources = {"datasets": [str(Path(d).resolve()) for d in datasets], "eval_datasets": [str(Path(d).resolve()) for d in eval_datasets], "cameras": list(cameras or [])}
    settings = {
        **sources,
        "trajectories": resume.digest(trajectories),  # the same paths generated again are other data
        "model": {k: v for k, v in asdict(model_config).items() if k != "device"},
        "train": dict(config.__dict__),
        "world_size": distributed.world_size(),
    }
    resume_from = resume.Resume(state, json.dumps(settings, sort_keys=True), save_every)
    try:
        if not main:
            model, history = train(trajectories, model_config, config, resume_from=resume_from)
            distributed.weight_digests(model)
            return model, history
        with atomic_folder(out, overwrite=True, inputs=[*datasets, *eval_datasets]) as partial:
            model, history = train(trajectories, model_config, config, eval_trajectories, on_log, resume_from, on_resume)
            model.save_pretrained(partial)
            digests = distributed.weight_digests(model)
            if len(set(digests)) > 1:
                raise CurateError(f"the {len(digests)} torchrun ranks ended with different weights ({', '.join(d[:12] for d in digests)}); the checkpoint is not written")
            log = {
                **sources,
                "trajectories": len(trajectories),
                "out": str(Path(out).resolve()),
                "train_config": dict(config.__dict__),
                "code_version": code_version,
                "created": provenance.now(),
                "world_size": distributed.world_size(),
                "weight_digests": digests,  # SHA-256 of each rank's weights: equal when DDP kept them in step
                "history": history,
            }
            (partial / TRAINING_LOG).write_text(json.dumps(log, indent=1))
            training_curves(history, partial / "training_curves.png")
        resume.discard(resume_from)
    finally:
        distributed.stop()
    return model, history


def resume_path(out: str | Path) -> Path:
    """Where `curate rm train --out OUT` keeps the state an interrupted run resumes from: a hidden file beside OUT."""
    out = Path(out).resolve()
    return out.parent / f".{out.name}.resume.pt"


def join_models(members: Sequence[str | Path], out: Path, overwrite: bool = False) -> CurateRewardModel:
    """One checkpoint at `out` whose outputs are the average of `members`' (checkpoints of one config, trained apart,
    e.g. with other seeds); its training log holds each member's source, weights digest and training log."""
    if len(members) < 2:
        raise CurateError(f"an ensemble needs at least 2 checkpoints, got {len(members)}; train more with `curate rm train --seed N`")
    models = [load_model(m) for m in members]
    settings = []
    for path, model in zip(members, models, strict=True):
        if model.config.members > 1:
            raise CurateError(f"{path} is already an ensemble of {model.config.members}; give the checkpoints it was joined from")
        # the loaded config, not the file: a field added since a member was saved reads as its default in both
        settings.append({k: v for k, v in asdict(model.config).items() if k != "device"})
    for path, setting in zip(members[1:], settings[1:], strict=True):
        differ = sorted(k for k in setting if setting[k] != settings[0][k])  # one dataclass: the same fields
        if differ and set(differ) <= {"success_scale", "success_bias"}:
            raise CurateError(f"{path} and {members[0]} calibrate their success heads differently; join the checkpoints as trained, then calibrate the ensemble with `curate rm calibrate`")
        if differ:
            raise CurateError(f"{path} differs from {members[0]} in {', '.join(differ)}; an ensemble's members share one config (train them with the same options, other seeds)")
    digests = [provenance.file_sha256(Path(m) / "model.safetensors") for m in members]
    for i, digest in enumerate(digests):
        if digest in digests[:i]:  # the same run twice (or a copy of it) would pass for two seeds' agreement
            raise CurateError(f"{members[i]} has the same weights as {members[digests.index(digest)]}; an ensemble joins runs trained apart (other seeds)")
    ensemble = CurateRewardModel(replace(models[0].config, members=len(models)))
    for slot, model in zip(ensemble.members, models, strict=True):
        slot.load_state_dict(model.state_dict())
    sources = []
    for path, digest in zip(members, digests, strict=True):
        log = Path(path) / TRAINING_LOG
        training = json.loads(log.read_text()) if log.is_file() else None
        if isinstance(training, dict) and training.get("history"):  # the curves stay with the member; its last step here
            training["final"] = training.pop("history")[-1]
        sources.append({"path": str(Path(path).resolve()), "weights_sha256": digest, "training": training})
    with atomic_folder(out, overwrite, inputs=members) as partial:
        ensemble.save_pretrained(partial)
        log = {"members": sources, "out": str(Path(out).resolve()), "code_version": provenance.code_version(), "created": provenance.now()}
        (partial / TRAINING_LOG).write_text(json.dumps(log, indent=1))
    return ensemble


def calibrate_model(
    source: str | Path | None,
    datasets: Sequence[str | Path],
    out: Path,
    cameras: Sequence[str] | None = None,
    frames: int = 8,
    overwrite: bool = False,
    on_load: Callable[[int], None] | None = None,
) -> Calibration:
    """Checkpoint `source` (None: the shipped one) copied to `out` with its success head calibrated on `datasets`,
    labelled episodes it never trained on: the same weights file, config.json with the fitted success_scale and
    success_bias, its training log, and calibration.json with the fit (docs/rewardmodel.md)."""
    folder = Path(source) if source is not None else DEFAULT_CHECKPOINT
    check_target(out, overwrite, inputs=[folder, *datasets])  # before decoding episodes
    model = load_model(folder)
    check_frames(model, frames)
    trajectories = load_many(datasets, model.config.image_size, cameras, on_load)
    fit = fit_calibration(model, trajectories, frames)
    with atomic_folder(out, overwrite, inputs=[folder, *datasets]) as partial:
        replace(model.config, success_scale=fit.scale, success_bias=fit.bias).save_pretrained(partial)
        shutil.copyfile(folder / "model.safetensors", partial / "model.safetensors")  # byte for byte: the same weights digest
        copy_logs(folder, partial, (TRAINING_LOG, "training_curves.png"))
        log = {**asdict(fit), **derived_from(folder, datasets, cameras), "frames": frames}
        (partial / "calibration.json").write_text(json.dumps(log, indent=1))
    return fit


def match_model(
    source: str | Path | None,
    datasets: Sequence[str | Path],
    out: Path,
    config: MatchConfig,
    cameras: Sequence[str] | None = None,
    overwrite: bool = False,
    on_load: Callable[[int], None] | None = None,
    on_cache: tuple[Callable[[int], None], Callable[[], None]] | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Checkpoint `source` (None: the shipped one) copied to `out` with a match head trained anew on a frozen ImageNet
    network's features of `datasets`' successful episodes (its training data, or more); every other weight, and any
    calibration, as they were. Its training log is copied; match_training.json holds this stage's."""
    folder = Path(source) if source is not None else DEFAULT_CHECKPOINT
    check_target(out, overwrite, inputs=[folder, *datasets])  # before decoding episodes
    model = with_imagenet_match(load_model(folder), config.seed, config.ends, config.with_trained, config.grey, config.grid)
    trajectories = load_many(datasets, model.config.image_size, cameras, on_load)
    if on_cache is not None:
        on_cache[0](len(trajectories))
    cached = cache_features(model, trajectories, None if on_cache is None else on_cache[1])
    history = train_match(model, cached, config, on_log)
    with atomic_folder(out, overwrite, inputs=[folder, *datasets]) as partial:
        model.save_pretrained(partial)
        copy_logs(folder, partial, (TRAINING_LOG, "training_curves.png", "calibration.json"))
        log = {**derived_from(folder, datasets, cameras), "successful_trajectories": len(cached), "match_config": asdict(config), "history": history}
        (partial / "match_training.json").write_text(json.dumps(log, indent=1))
    return history


def copy_logs(folder: Path, partial: Path, names: Sequence[str]) -> None:
    """A derived checkpoint keeps its source's logs (those it has)."""
    for name in names:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, partial / name)


def derived_from(folder: Path, datasets: Sequence[str | Path], cameras: Sequence[str] | None) -> dict:
    """What a derived checkpoint's log records of where it came from."""
    return {
        "source": str(folder.resolve()),
        "datasets": [str(Path(d).resolve()) for d in datasets],
        "cameras": list(cameras or []),
        "code_version": provenance.code_version(),
        "created": provenance.now(),
    }


def check_frames(model: CurateRewardModel, num_frames: int) -> None:
    if not 1 <= num_frames <= model.config.max_frames:
        raise CurateError(f"--frames must be between 1 and {model.config.max_frames} (the model's longest trajectory), got {num_frames}")


def evaluate_by_task(model: CurateRewardModel, trajectories: list[Trajectory], num_frames: int) -> dict[str, dict[str, float]]:
    """Alignment metrics per task and over all (`"all"`), plus preference accuracy."""
    check_frames(model, num_frames)
    scored = score_trajectories(model.predict, trajectories, num_frames)
    by_task: dict[str, list] = defaultdict(list)
    for s in scored:
        by_task[s.task].append(s)
    results = {task: alignment_metrics(items) for task, items in sorted(by_task.items())}
    results["all"] = alignment_metrics(scored)
    results["all"]["preference_accuracy"] = preference_accuracy(model, trajectories, num_frames)
    return results
