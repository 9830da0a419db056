"""A gymnasium wrapper that replaces an env's reward with the reward model's progress on the frames rendered so far,
and ends the episode when the model detects success (a majority of recent success probabilities over a threshold)."""

from collections import deque
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rewardmodel.evaluate import evenly_spaced
from rewardmodel.model import CurateRewardModel


class RewardModelWrapper(gym.Wrapper):
    """Dense reward = predicted progress of the latest frame (the model sees up to `context` frames, evenly spaced
    over the episode so far, always the first and the latest). `info` gains `rm_progress`, `rm_success_prob`,
    `rm_success` and the env's own `env_reward`."""

    def __init__(
        self,
        env: gym.Env,
        model: CurateRewardModel,
        instruction: str,
        render: Callable[[], np.ndarray] | None = None,
        context: int | None = None,
        success_threshold: float = 0.5,
        success_window: int = 5,
    ):
        super().__init__(env)
        if not instruction.strip():
            raise ValueError("instruction is empty; give the task in words, e.g. 'open the drawer'")
        if not 0 <= success_threshold <= 1:
            raise ValueError(f"success_threshold must be in [0, 1], got {success_threshold}")
        if success_window < 1:
            raise ValueError(f"success_window must be at least 1, got {success_window}")
        self.model = model.eval()
        self.instruction = instruction
        self.render_frame = render or env.render  # an env made with render_mode="rgb_array", or your own camera
        self.context = context or model.config.num_frames
        self.success_threshold = success_threshold
        self.recent = deque(maxlen=success_window)
        self.frames: list[np.ndarray] = []

    def _frame(self) -> np.ndarray:
        frame = np.asarray(self.render_frame())
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"render must return one (H, W, 3) uint8 image, got {frame.shape} {frame.dtype}")
        return frame

    @torch.inference_mode()
    def _judge(self) -> tuple[float, float]:
        """Progress and success probability of the latest frame."""
        picked = evenly_spaced(len(self.frames), self.context)
        video = torch.from_numpy(np.stack([self.frames[i] for i in picked]))[None]
        progress, success = self.model.predict(video, [self.instruction])
        return float(progress[0, -1]), float(success[0, -1])

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.frames = [self._frame()]
        self.recent.clear()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, env_reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(self._frame())
        progress, success_prob = self._judge()
        self.recent.append(success_prob >= self.success_threshold)
        detected = sum(self.recent) > self.recent.maxlen / 2
        info = {**info, "env_reward": env_reward, "rm_progress": progress, "rm_success_prob": success_prob, "rm_success": detected}
        return obs, progress, bool(terminated or detected), truncated, info
