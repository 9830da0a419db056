"""Platt scaling of the success head: on episodes the model never trained on, fit (scale, bias) so that
sigmoid(scale * logit + bias) is a calibrated probability of "this episode succeeded" at its highest frame."""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rewardmodel.errors import RewardModelError
from rewardmodel.evaluate import batches
from rewardmodel.metrics import f1_of_failures
from rewardmodel.records import Trajectory


@dataclass(frozen=True)
class Calibration:
    """The fitted scale and bias, and how the calibration episodes fare before and after (failure F1 at the 0.5 bar,
    episode-level binary cross-entropy)."""

    scale: float
    bias: float
    episodes: int
    failures: int
    failure_f1_before: float
    failure_f1_after: float
    bce_before: float
    bce_after: float


@torch.no_grad()  # not inference mode: the fit takes gradients through these
def episode_logits(model, trajectories: list[Trajectory], num_frames: int, batch_size: int = 32) -> list[torch.Tensor]:
    """Each trajectory's raw success logits (M, K) at `num_frames` evenly spaced frames, as scoring reads them."""
    out: dict[int, torch.Tensor] = {}
    for chunk, frames, _ in batches(trajectories, num_frames, batch_size):
        logits = model.success_logits(frames, [trajectories[i].instruction for i in chunk]).float().cpu()
        for row, i in enumerate(chunk):
            out[i] = logits[:, row]
    return [out[i] for i in range(len(trajectories))]


def episode_success(logits: list[torch.Tensor], scale: torch.Tensor | float, bias: torch.Tensor | float) -> torch.Tensor:
    """(N,) each episode's highest success probability over its frames, the mean over members and views first."""
    return torch.stack([torch.sigmoid(scale * x + bias).mean(0).max() for x in logits])


def fit_calibration(model, trajectories: list[Trajectory], num_frames: int) -> Calibration:
    """Fit (scale, bias) by the episode-level cross-entropy of the highest success probability against whether the
    episode succeeded (successful or suboptimal: success came at some frame)."""
    succeeded = torch.tensor([t.quality != "failure" for t in trajectories])
    if succeeded.all() or not succeeded.any():
        kind = "failed" if succeeded.all() else "successful"
        raise RewardModelError(f"calibration needs successful and failed episodes, and these {len(trajectories)} have no {kind} one; add episodes the model never trained on of both kinds (e.g. `curate datagen metaworld` with a new --seed)")
    logits = episode_logits(model, trajectories, num_frames)
    target = succeeded.float()
    current = (model.config.success_scale, model.config.success_bias)  # a calibrated model is fitted afresh
    log_scale, bias = torch.tensor(float(np.log(current[0])), requires_grad=True), torch.tensor(float(current[1]), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_scale, bias], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        probability = episode_success(logits, log_scale.exp(), bias).clamp(1e-6, 1 - 1e-6)
        loss = F.binary_cross_entropy(probability, target)
        loss.backward()
        return loss

    optimizer.step(closure)
    scale, shift = float(log_scale.detach().exp()), float(bias.detach())
    with torch.no_grad():
        before, after = episode_success(logits, *current), episode_success(logits, scale, shift)
        bce = lambda p: float(F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), target))  # noqa: E731
    if not (np.isfinite(scale) and np.isfinite(shift)):
        raise RewardModelError(f"the calibration did not converge (scale {scale}, bias {shift}); give more episodes of both kinds")
    return Calibration(scale, shift, len(trajectories), int((~succeeded).sum()), f1_of_failures((before < 0.5).numpy(), (~succeeded).numpy()), f1_of_failures((after < 0.5).numpy(), (~succeeded).numpy()), bce(before), bce(after))
