"""Behaviour cloning on arrays: a state-based MLP policy, trained top to bottom (seeding, data, model, loop, save)."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class BCConfig:
    """`curate bc train`: the policy's size and its optimisation."""

    hidden: int = 256
    layers: int = 3
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"hidden, layers, steps and batch size must be positive, got {self}")
        if not 0 < self.lr < 1:
            raise ValueError(f"learning rate must be in (0, 1), got {self.lr}")


class BCPolicy(nn.Module):
    """MLP from normalised state to action in [-1, 1]; the normalisation is part of the saved weights."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int = 256, layers: int = 3):
        super().__init__()
        dims = [state_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(d_in, d_out), nn.LayerNorm(d_out), nn.GELU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, action_dim), nn.Tanh())
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.net((states - self.state_mean) / self.state_std)

    @torch.inference_mode()
    def act(self, state: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(state, dtype=torch.float32).unsqueeze(0))[0].numpy()


def train_bc(
    states: np.ndarray, actions: np.ndarray, state_mean: np.ndarray, state_std: np.ndarray, config: BCConfig, weights: np.ndarray | None = None
) -> tuple[BCPolicy, list[float]]:
    """Fit actions from states by mean squared error (each frame's error scaled by its weight, when given: reward-
    weighted BC); returns the policy (eval mode) and the loss per step."""
    # seeding
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    # data
    assert states.ndim == 2 and actions.ndim == 2 and len(states) == len(actions), (states.shape, actions.shape)
    if len(states) == 0:
        raise ValueError("no frames to train on; the selection is empty")
    x = torch.as_tensor(states, dtype=torch.float32)
    y = torch.as_tensor(actions, dtype=torch.float32).clamp(-1, 1)
    w = torch.ones(len(x)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    assert w.shape == (len(x),), (w.shape, len(x))

    # model
    policy = BCPolicy(x.shape[1], y.shape[1], config.hidden, config.layers)
    policy.state_mean.copy_(torch.as_tensor(state_mean, dtype=torch.float32))
    policy.state_std.copy_(torch.as_tensor(state_std, dtype=torch.float32).clamp(min=1e-3))  # constant dims stay finite
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)

    # loop
    losses = []
    for _ in range(config.steps):
        batch = torch.randint(0, len(x), (config.batch_size,), generator=generator)
        errors = nn.functional.mse_loss(policy(x[batch]), y[batch], reduction="none").mean(dim=1)
        loss = (errors * w[batch]).sum() / (w[batch].sum() + 1e-6)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return policy.eval(), losses
