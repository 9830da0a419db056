"""ROBOMETER's three heads on backbone states: progress (categorical bins), success (logit), preference (logit)."""

import torch
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
