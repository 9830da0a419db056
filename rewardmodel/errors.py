"""The exception type the reward model package raises for bad input (checkpoints, data, diverging training)."""


class RewardModelError(Exception):
    """A user-facing problem with a one-line message naming what is wrong and how to fix it."""
