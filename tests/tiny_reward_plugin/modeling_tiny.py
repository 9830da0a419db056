"""Reward = mean brightness of the newest frame times `scale` (one learnable parameter so it saves as safetensors)."""

import torch
from torch import nn

from lerobot.rewards.pretrained import PreTrainedRewardModel
from tiny_reward_plugin.configuration_tiny import TinyBrightnessConfig


class TinyBrightnessRewardModel(PreTrainedRewardModel):
    config_class = TinyBrightnessConfig
    name = "tiny_brightness"

    def __init__(self, config: TinyBrightnessConfig, **kwargs):
        super().__init__(config)
        self.scale = nn.Parameter(torch.tensor(float(config.scale)))

    def compute_reward(self, batch: dict) -> torch.Tensor:
        video = batch[self.config.image_key]  # (B, T, C, H, W) in [0, 1]
        return video[:, -1].mean(dim=(1, 2, 3)) * self.scale
