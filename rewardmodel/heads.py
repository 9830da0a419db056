"""ROBOMETER's three heads on backbone states: progress (categorical bins), success (logit), preference (logit); and
our match head: how well an instruction fits what a trajectory shows, one logit per (trajectory, instruction)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mlp_head(hidden: int, out: int, dropout: float) -> nn.Sequential:
    """hidden -> hidden/2 -> LayerNorm -> GELU -> dropout -> out, as in the paper's heads."""
    return nn.Sequential(nn.Linear(hidden, hidden // 2), nn.LayerNorm(hidden // 2), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden // 2, out))


class Heads(nn.Module):
    def __init__(self, hidden: int, num_bins: int, dropout: float):
        super().__init__()
        self.progress = mlp_head(hidden, num_bins, dropout)
        self.success = mlp_head(hidden, 1, dropout)
        self.preference = mlp_head(hidden, 1, dropout)
        self.register_buffer("centres", torch.linspace(0, 1, num_bins), persistent=False)

    def expected_progress(self, logits: Tensor) -> Tensor:
        """The progress bins' expected value, in [0, 1]."""
        return logits.softmax(-1) @ self.centres


class MatchHead(nn.Module):
    """SigLIP-style: a trajectory's instruction-free summary and an instruction's sentence embedding, each projected
    and L2-normalised; logit = scale * cosine + bias (started at SigLIP's 10 and -10: few pairs match)."""

    def __init__(self, video_dim: int, text_dim: int, dim: int, dropout: float):
        super().__init__()
        self.video = mlp_head(video_dim, dim, dropout)
        self.text = nn.Linear(text_dim, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.bias = nn.Parameter(torch.tensor(-10.0))

    def forward(self, video: Tensor, text: Tensor) -> Tensor:
        """video (B, video_dim), text (U, text_dim) -> logits (B, U)."""
        v = F.normalize(self.video(video), dim=-1)
        t = F.normalize(self.text(text), dim=-1)
        return self.log_scale.exp() * v @ t.T + self.bias
