"""Trains the reward model on pair batches, top to bottom: seeding, data, model, loop, evaluation. The caller saves."""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rewardmodel import distributed, paraphrases, resume
from rewardmodel.config import CurateRewardConfig
from rewardmodel.errors import RewardModelError
from rewardmodel.evaluate import evaluate
from rewardmodel.model import CurateRewardModel
from rewardmodel.pairs import DEFAULT_RATIOS, STRATEGIES, PairSampler
from rewardmodel.records import PairBatch, Trajectory


@dataclass(frozen=True)
class TrainConfig:
    """`curate rm train`: optimisation and data settings (model settings live in CurateRewardConfig)."""

    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    ratios: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATIOS))
    eval_every: int = 500
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    device: str = "cpu"  # under torchrun with cuda: each rank's own GPU
    paraphrases: bool = False  # train under the paraphrases of rewardmodel.paraphrases.TRAIN half the time

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise RewardModelError(f"steps and batch size must be at least 1, got steps={self.steps} batch_size={self.batch_size}")
        if not 0 < self.lr < 1:
            raise RewardModelError(f"learning rate must be in (0, 1), got {self.lr}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RewardModelError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
        unknown = set(self.ratios) - set(STRATEGIES)
        if unknown:
            raise RewardModelError(f"unknown pair strategies {sorted(unknown)}; valid: {', '.join(STRATEGIES)}")


def augment(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per trajectory, so all its frames move together: a mirror image half the time, a rotation of up to 10 degrees,
    a zoom of 0.85-1.15x, a shift of up to 1/8 of the image, and brightness, contrast and colour jitter (uint8 in,
    uint8 out). Cameras differ in side, angle and distance; the model should follow the task, not one camera's pixels."""
    b, t, h, w, c = frames.shape
    uniform = lambda low, high, *shape: low + (high - low) * torch.rand(b, *shape, generator=generator)  # noqa: E731
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    angle = uniform(-10, 10) * math.pi / 180
    zoom = uniform(0.85, 1.15)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(-0.25, 0.25)], 1), torch.stack([sin * flip, cos, uniform(-0.25, 0.25)], 1)], 1)
    # one grid per trajectory, its frames stacked as channels: the same sampling as a grid per frame, 1.5x faster
    grid = torch.nn.functional.affine_grid(theta, [b, t * c, h, w], align_corners=False)
    x = frames.permute(0, 1, 4, 2, 3).reshape(b, t * c, h, w).float()
    out = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).view(b, t, c, h, w)
    gain = uniform(0.8, 1.2, 1, 1, 1, 1) * uniform(0.9, 1.1, 1, c, 1, 1)  # contrast, and colour per channel
    bias = uniform(-20, 20, 1, 1, 1, 1)
    out.sub_(128).mul_(gain).add_(128).add_(bias)  # (out - 128) * gain + 128 + bias, in place
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2)


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `steps`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(step / steps, 1.0))))


def train(
    trajectories: list[Trajectory],
    model_config: CurateRewardConfig,
    config: TrainConfig,
    eval_trajectories: list[Trajectory] | None = None,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    resume_from: resume.Resume | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> tuple[CurateRewardModel, list[dict[str, float]]]:
    # seeding: the same initial weights everywhere, different pairs on each torchrun rank
    device = distributed.device_for(config.device)
    distributed.start(device)
    data_seed = config.seed + 1000 * distributed.rank()
    random.seed(data_seed)
    np.random.seed(data_seed)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(data_seed)
    if config.threads:
        torch.set_num_threads(config.threads)

    # data
    sampler = PairSampler(trajectories, model_config.num_frames, config.ratios, data_seed, paraphrases.TRAIN if config.paraphrases else None)

    # model
    model = CurateRewardModel(model_config).to(device).train()
    replicated = distributed.wrap(model, device)  # the model itself outside torchrun
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = cosine_schedule(optimizer, config.warmup_steps, config.steps)

    # an interrupted run's state, if any
    history: list[dict[str, float]] = []
    first = 1
    saved = resume.load(resume_from) if resume_from else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        resume.set_random_state(saved["random"][distributed.rank()], generator, sampler.rng)
        history, first = saved["history"], saved["step"] + 1
        if on_resume is not None:
            on_resume(saved["step"])

    # loop
    started = time.perf_counter()
    for step in range(first, config.steps + 1):
        batch = sampler.batch(config.batch_size)
        batch = PairBatch(**{**batch.__dict__, "frames_a": augment(batch.frames_a, generator), "frames_b": augment(batch.frames_b, generator)})
        loss, logs = replicated(batch)
        if not torch.isfinite(loss):
            raise RewardModelError(f"the loss became {loss.item()} at step {step} (batch strategies {sorted(set(batch.strategies))}, logs {logs}); lower --lr or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        logs |= {"step": float(step), "lr": schedule.get_last_lr()[0], "samples_per_s": (step - first + 1) * config.batch_size * distributed.world_size() / (time.perf_counter() - started)}

        # evaluation
        if eval_trajectories and (step % config.eval_every == 0 or step == config.steps):
            model.eval()
            logs |= {f"eval_{k}": v for k, v in evaluate(model, eval_trajectories, model_config.num_frames).items()}
            model.train()
        history.append(logs)
        if on_log is not None:
            on_log(step, logs)
        if resume_from and step % resume_from.every == 0 and step < config.steps:
            resume.save(resume_from, step, model, optimizer, schedule, history, resume.random_state(generator, sampler.rng))

    model.eval()
    return model, history
