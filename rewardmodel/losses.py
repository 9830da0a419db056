"""Losses of the dual objective: progress soft cross-entropy on two-hot targets, success and preference BCE; and the
match head's in-batch sigmoid loss."""

import torch
import torch.nn.functional as F
from torch import Tensor


def two_hot(targets: Tensor, num_bins: int) -> Tensor:
    """C51-style: each target in [0, 1] split between its two nearest bin centres (linspace(0, 1, num_bins))."""
    position = targets.clamp(0, 1) * (num_bins - 1)
    low = position.floor().long().clamp(max=num_bins - 2)
    upper_weight = position - low
    out = torch.zeros(*targets.shape, num_bins, device=targets.device)
    out.scatter_(-1, low.unsqueeze(-1), (1 - upper_weight).unsqueeze(-1))
    out.scatter_add_(-1, (low + 1).unsqueeze(-1), upper_weight.unsqueeze(-1))
    return out


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def progress_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Soft cross-entropy of (B, T, bins) logits against two-hot targets, on frames where mask is set."""
    per_frame = -(two_hot(targets, logits.shape[-1]) * logits.log_softmax(-1)).sum(-1)
    return masked_mean(per_frame, mask)


def success_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    return masked_mean(F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none"), mask)


def preference_loss(logits: Tensor, a_is_better: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, a_is_better.float())


def rank_loss(final_a: Tensor, final_b: Tensor, a_is_better: Tensor, scale: float = 10.0) -> Tensor:
    """Bradley-Terry on the two trajectories' final progress: puts failures below successes on one progress scale."""
    return F.binary_cross_entropy_with_logits(scale * (final_a - final_b), a_is_better.float())


def match_loss(logits: Tensor, same_task: Tensor, whole: Tensor | None = None) -> Tensor:
    """SigLIP's sigmoid loss over every (trajectory, instruction) of the batch, (B, U) logits and bool targets, with
    matching and non-matching pairs weighted equally: with 34 tasks about 1 pair in 16 matches, and the plain mean
    trained a head that learned the base rate and nothing else (loss 0.226 against 0.233 for "never a match").

    With `whole` (U, U), the targets of the whole batch when `logits` are one of its equal blocks of rows (a torchrun
    rank's): each part is summed over the block, divided by the whole batch's count of such pairs and scaled by the
    number of blocks, so that the blocks' mean, and so the mean of their gradients, is the whole batch's loss."""
    signs = same_task.float() * 2 - 1
    per_pair = -F.logsigmoid(signs * logits)
    positive, negative = same_task, ~same_task
    if whole is None:
        parts = [per_pair[mask].mean() for mask in (positive, negative) if mask.any()]
        return torch.stack(parts).mean()
    blocks = whole.shape[0] / same_task.shape[0]
    parts = [per_pair[mask].sum() * blocks / all_of_kind.sum() for mask, all_of_kind in ((positive, whole), (negative, ~whole)) if all_of_kind.any()]
    return torch.stack(parts).mean()
