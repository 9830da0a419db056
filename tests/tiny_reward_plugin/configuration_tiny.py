"""A tiny third-party reward model for tests, registered in lerobot's reward registry like a plugin."""

from dataclasses import dataclass

from lerobot.configs.rewards import RewardModelConfig


@RewardModelConfig.register_subclass("tiny_brightness")
@dataclass
class TinyBrightnessConfig(RewardModelConfig):
    image_key: str = "observation.images"
    task_key: str = "task"
    scale: float = 1.0
    device: str | None = "cpu"
