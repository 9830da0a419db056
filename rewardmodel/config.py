"""The reward model's configuration: a LeRobot RewardModelConfig subclass registered as `curate_robometer`."""

from dataclasses import dataclass, field
from typing import Any

from lerobot.configs.rewards import RewardModelConfig

from rewardmodel.imagenet import GRIDS
from rewardmodel.text import PACKAGED_TEXT_ENCODER

MODEL_TYPE = "curate_robometer"
MATCH_SOURCES = ("shared", "own", "imagenet")
# Loss-weight presets for ablations: ReWiND-like progress only, and preference only.
ABLATIONS = {
    "none": {},
    "progress-only": {"success_weight": 0.0, "preference_weight": 0.0, "rank_weight": 0.0, "match_weight": 0.0},
    "preference-only": {"progress_weight": 0.0, "success_weight": 0.0, "rank_weight": 0.0, "match_weight": 0.0},
}


@RewardModelConfig.register_subclass(MODEL_TYPE)
@dataclass
class CurateRewardConfig(RewardModelConfig):
    """ROBOMETER-style reward model: per-frame progress (categorical bins), success, and pairwise preference."""

    backbone: str = "compact"  # a name registered in rewardmodel.backbones
    image_size: int = 64  # frames are resized to this square size, whatever the dataset's resolution
    num_frames: int = 8  # frames per trajectory in training pairs (and the default for scoring)
    max_frames: int = 32  # longest trajectory the position embeddings cover
    hidden_dim: int = 128
    num_layers: int = 3
    num_heads: int = 4
    dropout: float = 0.1
    num_bins: int = 10  # progress bins, centres linspace(0, 1, num_bins)
    text_encoder: str = PACKAGED_TEXT_ENCODER  # or a hub id / local directory of a sentence-embedding model
    text_dim: int = 384
    qwen_model: str = ""  # qwen3vl backbone: hub id or local directory; empty uses qwen_config with random weights
    qwen_config: dict[str, Any] = field(default_factory=dict)  # qwen3vl backbone: Qwen3VLConfig kwargs (tiny tests)
    # Loss weights (ROBOMETER: 1/1/1). rank: Bradley-Terry on final progress, our addition (docs/rewardmodel.md).
    progress_weight: float = 1.0
    success_weight: float = 1.0
    preference_weight: float = 1.0
    rank_weight: float = 1.0
    # The match head (how well the instruction fits the trajectory's task, apart from progress; docs/rewardmodel.md):
    # 0 builds none, as in checkpoints made before it existed
    match_weight: float = 0.0
    match_dim: int = 128
    # what the match head summarises: the CNN the progress head reads ("shared"), a narrow CNN of its own ("own"),
    # so its loss does not pull the progress head's features, or the shared CNN's features beside a frozen ImageNet
    # network's ("imagenet"; trained by `curate rm match` on a trained checkpoint)
    # (docs/rewardmodel.md)
    match_source: str = "shared"
    # match_source "imagenet" only: the match head reads the first and last frame of each trajectory, so the frozen
    # network runs on 2 frames per trajectory instead of all (scoring speed; docs/rewardmodel.md)
    match_ends: bool = False
    # match_source "imagenet" only: the checkpoint also keeps the match head the model was trained with (on the shared
    # CNN's summary), and the match probability is the mean of the two heads' (docs/rewardmodel.md)
    match_with_trained: bool = False
    # match_source "imagenet" only: the frozen network sees grey frames (luma), and its last map is pooled over a
    # match_grid x match_grid grid instead of whole (colour and layout; docs/rewardmodel.md)
    match_grey: bool = False
    match_grid: int = 1
    # more than 1: an ensemble of that many models of this config, trained apart (other seeds) and joined by `curate rm
    # ensemble`, whose outputs are averaged: one training seed's quirks on an unseen view count for less
    members: int = 1
    # average every prediction over the frames and their mirror image (test-time augmentation), but a match head on
    # match_source "imagenet", which reads the frames as they are (the network's cost). `curate rm train` sets it
    # unless --no-mirror-average, as its augmentation mirrors half the clips; checkpoints saved before the field
    # existed score one view
    mirror_average: bool = False
    # success probability = sigmoid(success_scale * logit + success_bias): Platt scaling fitted by `curate rm
    # calibrate` on episodes the model never trained on (the head is overconfident on new episodes); 1 and 0 leave
    # the head as trained, as in checkpoints saved before the fields existed
    success_scale: float = 1.0
    success_bias: float = 0.0
    device: str | None = "cpu"

    def __post_init__(self) -> None:
        super().__post_init__()
        from rewardmodel.backbones import BACKBONES

        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; valid backbones: {', '.join(BACKBONES)}")
        if not 16 <= self.image_size <= 512:
            raise ValueError(f"image_size must be between 16 and 512, got {self.image_size}")
        if not 2 <= self.num_frames <= self.max_frames:
            raise ValueError(f"num_frames must be between 2 and max_frames={self.max_frames}, got {self.num_frames}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be a multiple of num_heads {self.num_heads}")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {self.num_bins}")
        if self.match_weight < 0:
            raise ValueError(f"match_weight must be >= 0, got {self.match_weight}")
        if self.match_source not in MATCH_SOURCES:
            raise ValueError(f"unknown match_source {self.match_source!r}; valid: {', '.join(MATCH_SOURCES)}")
        if self.match_grid not in GRIDS:
            raise ValueError(f"match_grid must be one of {GRIDS} (the frozen network's last map is 4x4), got {self.match_grid}")
        changed = [name for name, default in (("match_ends", False), ("match_with_trained", False), ("match_grey", False), ("match_grid", 1)) if getattr(self, name) != default]
        for imagenet_only in changed:
            if self.match_source != "imagenet" or self.match_weight == 0:
                raise ValueError(f"{imagenet_only} applies to a match head on match_source 'imagenet' only, got match_source {self.match_source!r} and match_weight {self.match_weight}")
        if not self.success_scale > 0:
            raise ValueError(f"success_scale must be > 0 (a calibration keeps the order of success logits), got {self.success_scale}")
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")
        if self.match_weight > 0 and not BACKBONES[self.backbone].video_summary:
            raise ValueError(f"the {self.backbone} backbone gives no instruction-free trajectory summary, so it cannot have a match head; set match_weight 0")
