"""Backbones, registered by name: frames + instruction -> one hidden state per frame and a preference state.

The token layout follows ROBOMETER: instruction, trajectory A's frames, a split token, trajectory B's frames and a
preference token. A frame's state sees the instruction and its own trajectory's frames up to itself (causal), so a
trajectory's progress is the same whether it is scored alone or in a pair; the preference token sees everything.
"""

from dataclasses import dataclass

import torch
from lerobot.configs.rewards import RewardModelConfig
from torch import Tensor, nn

# Backbones take the reward model's config (rewardmodel.config.CurateRewardConfig), typed by its lerobot base class:
# the config imports this module to check backbone names, so this module does not import it back.

BACKBONES: dict[str, type["Backbone"]] = {}


def register_backbone(name: str):
    """Class decorator: make a backbone available by name (`CurateRewardConfig.backbone`)."""

    def wrap(cls: type["Backbone"]) -> type["Backbone"]:
        BACKBONES[name] = cls
        return cls

    return wrap


def make_backbone(config: RewardModelConfig) -> "Backbone":
    """The registered backbone the config names (CurateRewardConfig checked the name)."""
    return BACKBONES[config.backbone](config)


@dataclass
class BackboneOutput:
    frames_a: Tensor  # (B, T, H) one state per frame of trajectory A
    frames_b: Tensor | None  # (B, T, H) for pairs
    preference: Tensor | None  # (B, H) for pairs
    # (B, 2H) what each trajectory shows, seen without the instruction (backbones with `video_summary` only): the
    # match head compares it with any instruction, so one pass tells how well every instruction fits
    video_a: Tensor | None = None
    video_b: Tensor | None = None
    # (B, 2H) the same summary of the shared CNN's features of A, for the trained head kept beside an ImageNet one
    # (match_with_trained only)
    trained_a: Tensor | None = None


def summarise(features: Tensor) -> Tensor:
    """(B, T, H) per-frame features -> (B, 2H): their mean (what is there) and last minus first (what changed)."""
    return torch.cat([features.mean(1), features[:, -1] - features[:, 0]], -1)


class Backbone(nn.Module):
    hidden_size: int
    video_summary: bool = False  # whether forward() fills video_a / video_b

    def forward(self, frames_a: Tensor, instructions: list[str], frames_b: Tensor | None = None, owners: Tensor | None = None, match: bool = True) -> BackboneOutput:
        """frames: (B, T, 3, S, S) floats in [0, 1]; one instruction per batch row. With `owners` (R,) (single
        trajectories only), R instructions, each on trajectory `owners[r]` of frames_a: `forward(frames_a[owners],
        instructions)`, with each trajectory's frames encoded once however many instructions it is scored under.
        Without `match` (single trajectories only), only what progress and success read: no match summary."""
        raise NotImplementedError

    def encode(self, frames: Tensor, match: bool = True) -> Tensor:
        """(N, 3, S, S) frames -> (N, ...) what `from_encoded` reads, computed once per frame however many
        trajectories share it (dense scoring); without `match`, only what progress and success read (no match
        summary then). Backbones that see frames only whole keep them as they are."""
        return frames

    def from_encoded(self, encoded: Tensor, instructions: list[str]) -> BackboneOutput:
        """`forward` on single trajectories of encoded frames (B, T, ...)."""
        return self.forward(encoded, instructions)


class FrameEncoder(nn.Module):
    """A small CNN trained from scratch: (N, 3, S, S) -> (N, H)."""

    def __init__(self, hidden: int, width: int = 16):
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 8 * width]  # narrow early layers: 3x cheaper than 32-64-128-128 on the CPU
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.GELU()]
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)  # any input size -> 4x4, so the model runs at other resolutions
        self.out = nn.Linear(8 * width * 16, hidden)

    def forward(self, images: Tensor) -> Tensor:
        return self.out(self.pool(self.conv(images * 2 - 1)).flatten(1))


def layout_mask(t_a: int, t_b: int) -> Tensor:
    """Boolean attention mask (True = blocked) for [instr, A_1..A_Ta, split, B_1..B_Tb, pref]."""
    n = 1 + t_a + (1 + t_b + 1 if t_b else 0)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed[:, 0] = True  # everything sees the instruction
    a = slice(1, 1 + t_a)
    allowed[a, a] = torch.ones(t_a, t_a, dtype=torch.bool).tril()
    if t_b:
        split, b0 = 1 + t_a, 2 + t_a
        b = slice(b0, b0 + t_b)
        allowed[split, : split + 1] = True
        allowed[b, b] = torch.ones(t_b, t_b, dtype=torch.bool).tril()
        allowed[n - 1, :] = True  # the preference token sees both trajectories
    return ~allowed


@register_backbone("compact")
class CompactBackbone(Backbone):
    """CPU-sized: a CNN per frame, frozen sentence embeddings for the instruction, a small causal transformer."""

    video_summary = True

    def __init__(self, config: RewardModelConfig):
        super().__init__()
        h = config.hidden_dim
        self.config = config
        self.hidden_size = h
        self.frames = FrameEncoder(h)
        # the match head's frames (docs/rewardmodel.md): a CNN of its own at half the width ("own"), or a frozen
        # ImageNet network projected to h ("imagenet"); encode() gives them beside the progress CNN's features
        self.match_frames: nn.Module | None = None
        if config.match_weight > 0 and config.match_source == "own":
            self.match_frames = FrameEncoder(h, 8)
        elif config.match_weight > 0 and config.match_source == "imagenet":
            from rewardmodel.imagenet import ImageNetFrames

            self.match_frames = ImageNetFrames(h, config.match_grey, config.match_grid)
        # what the match head summarises per frame: its own frames' features, or with "imagenet" both side by side
        self.match_width = 2 * h if config.match_source == "imagenet" and self.match_frames is not None else h
        self.text = nn.Linear(config.text_dim, h)
        self.position = nn.Embedding(config.max_frames, h)
        self.kind = nn.Embedding(5, h)  # instruction, frame of A, split, frame of B, preference
        layer = nn.TransformerEncoderLayer(h, config.num_heads, 4 * h, config.dropout, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)

    def _instruction(self, instructions: list[str], device: torch.device) -> Tensor:
        from rewardmodel.text import shared_encoder

        return shared_encoder(self.config.text_encoder).encode(instructions).to(device)

    def encode(self, frames: Tensor, match: bool = True) -> Tensor:
        """(N, 3, S, S) -> (N, H): the CNN's features; (N, 2H) with the match head's own CNN's (or projected ImageNet
        features) beside them, unless `match` is False."""
        if self.match_frames is None or not match:
            return self.frames(frames)
        return torch.cat([self.frames(frames), self.match_frames(frames)], -1)

    def _per_frame(self, encoder: nn.Module, frames: Tensor) -> Tensor:
        b, t = frames.shape[:2]
        assert frames.ndim == 5 and frames.shape[2] == 3, f"frames must be (B, T, 3, S, S), got {tuple(frames.shape)}"
        return encoder(frames.flatten(0, 1)).view(b, t, -1)

    def match_summary(self, frames: Tensor) -> Tensor:
        """(B, T, 3, S, S) -> (B, 2H): the match head's input from its own CNN (match_source "own")."""
        assert self.match_frames is not None, "match_summary needs match_source 'own'"
        return summarise(self._per_frame(self.match_frames, frames))

    def _tokens(self, features: Tensor, kind: int) -> Tensor:
        positions = self.position(torch.arange(features.shape[1], device=features.device))
        return features + positions + self.kind.weight[kind]

    def forward(self, frames_a: Tensor, instructions: list[str], frames_b: Tensor | None = None, owners: Tensor | None = None, match: bool = True) -> BackboneOutput:
        if frames_b is not None and self.match_frames is not None:
            # pairs (training): no summaries; the model runs the match CNN on each pair's chosen trajectory only
            return self._from_features(self._per_frame(self.frames, frames_a), instructions, self._per_frame(self.frames, frames_b))
        if frames_b is not None:
            return self.from_encoded(self._per_frame(self.encode, frames_a), instructions, self._per_frame(self.encode, frames_b))
        rows = slice(None) if owners is None else owners
        if not match:
            return self._from_features(self._per_frame(self.frames, frames_a)[rows], instructions)
        if self.config.match_ends:  # the ImageNet network on the two frames the match head reads
            features = self._per_frame(self.frames, frames_a)
            ends = torch.cat([features[:, [0, -1]], self._per_frame(self.match_frames, frames_a[:, [0, -1]])], -1)
            return self._from_features(features[rows], instructions, match_a=ends[rows])
        return self.from_encoded(self._per_frame(self.encode, frames_a)[rows], instructions)

    def from_encoded(self, encoded_a: Tensor, instructions: list[str], encoded_b: Tensor | None = None) -> BackboneOutput:
        h = self.hidden_size

        def split(e: Tensor) -> tuple[Tensor, Tensor | None]:
            if self.match_frames is None:
                return e, e
            if e.shape[-1] == h:  # encoded without the match features
                return e, None
            return e[..., :h], e[..., h:] if self.match_width == h else e

        features_a, match_a = split(encoded_a)
        features_b, match_b = (None, None) if encoded_b is None else split(encoded_b)
        if self.config.match_ends:
            match_a, match_b = (None if m is None else m[:, [0, -1]] for m in (match_a, match_b))
        return self._from_features(features_a, instructions, features_b, match_a, match_b)

    def _from_features(self, features_a: Tensor, instructions: list[str], features_b: Tensor | None = None, match_a: Tensor | None = None, match_b: Tensor | None = None) -> BackboneOutput:
        """The transformer over the progress CNN's features; summaries of the match features where given."""
        b, t_a = features_a.shape[:2]
        assert len(instructions) == b, f"{len(instructions)} instructions for a batch of {b}"
        t_b = 0 if features_b is None else features_b.shape[1]
        assert max(t_a, t_b) <= self.config.max_frames, f"{max(t_a, t_b)} frames exceed max_frames={self.config.max_frames}"
        instruction = (self.text(self._instruction(instructions, features_a.device)) + self.kind.weight[0]).unsqueeze(1)
        parts = [instruction, self._tokens(features_a, 1)]
        if features_b is not None:
            special = self.kind.weight[[2, 4]].unsqueeze(0).expand(b, 2, -1)
            parts += [special[:, :1], self._tokens(features_b, 3), special[:, 1:]]
        mask = layout_mask(t_a, t_b).to(features_a.device)
        hidden = self.norm(self.transformer(torch.cat(parts, 1), mask=mask))
        video_a = None if match_a is None else summarise(match_a)
        if features_b is None:
            trained_a = summarise(features_a) if self.config.match_with_trained else None
            return BackboneOutput(hidden[:, 1 : 1 + t_a], None, None, video_a, trained_a=trained_a)
        video_b = None if match_b is None else summarise(match_b)
        return BackboneOutput(hidden[:, 1 : 1 + t_a], hidden[:, 2 + t_a : 2 + t_a + t_b], hidden[:, -1], video_a, video_b)


# Qwen3-VL normalises pixels with mean 0.5 and std 0.5 (its preprocessor config).
QWEN_PIXEL_MEAN = 0.5
QWEN_PIXEL_STD = 0.5


@register_backbone("qwen3vl")
class Qwen3VLBackbone(Backbone):
    """The paper's layout on transformers' Qwen3-VL: instruction tokens, then per frame <vision_start> image tokens
    <vision_end> <progress>, a <split> token between the trajectories and a final <preference> token, one causal
    sequence (as in ROBOMETER, trajectory B's states also see A). Progress, split and preference are learned
    embeddings placed at those positions; the heads read the hidden states there."""

    def __init__(self, config: RewardModelConfig):
        super().__init__()
        from transformers import AutoTokenizer, Qwen3VLConfig, Qwen3VLModel

        self.config = config
        if config.qwen_model:
            self.model = Qwen3VLModel.from_pretrained(config.qwen_model)
            self.tokenizer = AutoTokenizer.from_pretrained(config.qwen_model)
        else:  # a randomly initialised model of the given size (tests, or training from scratch)
            self.model = Qwen3VLModel(Qwen3VLConfig(**config.qwen_config))
            self.tokenizer = None
        qwen = self.model.config
        vision = qwen.vision_config
        self.patch, self.merge, self.temporal = int(vision.patch_size), int(vision.spatial_merge_size), int(vision.temporal_patch_size)
        if config.image_size % (self.patch * self.merge):
            raise ValueError(f"image_size {config.image_size} must be a multiple of patch_size x spatial_merge_size = {self.patch * self.merge} for qwen3vl")
        self.hidden_size = int(qwen.text_config.hidden_size)
        self.special = nn.Parameter(torch.randn(3, self.hidden_size) * 0.02)  # progress, split, preference
        self.tokens_per_frame = (config.image_size // self.patch) ** 2 // self.merge**2

    def _text_ids(self, instruction: str) -> list[int]:
        if self.tokenizer is not None:
            return self.tokenizer(instruction, add_special_tokens=False)["input_ids"]
        # no vocabulary for a randomly initialised model: bytes mapped below the special ids
        reserved = min(self.model.config.image_token_id, self.model.config.video_token_id, self.model.config.vision_start_token_id, self.model.config.vision_end_token_id)
        return [1 + b % (reserved - 1) for b in instruction.encode()]

    def _pixels(self, frames: Tensor) -> Tensor:
        """(N, 3, S, S) in [0, 1] -> Qwen's patch rows (N * h * w, 3 * temporal * patch * patch), a still image
        repeated over the temporal patch, in the image processor's order."""
        n, c, s, _ = frames.shape
        g, m, p, t = s // self.patch, self.merge, self.patch, self.temporal
        x = ((frames - QWEN_PIXEL_MEAN) / QWEN_PIXEL_STD).unsqueeze(1).expand(n, t, c, s, s)
        x = x.reshape(n, 1, t, c, g // m, m, p, g // m, m, p).permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
        return x.reshape(n * g * g, c * t * p * p)

    def forward(self, frames_a: Tensor, instructions: list[str], frames_b: Tensor | None = None, owners: Tensor | None = None, match: bool = True) -> BackboneOutput:
        if owners is not None:  # every frame is its own image tokens in each row's sequence: nothing to share
            frames_a = frames_a[owners]
        qwen = self.model.config
        b, t_a = frames_a.shape[:2]
        t_b = 0 if frames_b is None else frames_b.shape[1]
        texts = [self._text_ids(i) for i in instructions]
        width = max(len(ids) for ids in texts)
        frame_ids = [qwen.vision_start_token_id] + [qwen.image_token_id] * self.tokens_per_frame + [qwen.vision_end_token_id, 0]
        body = frame_ids * t_a + ([0] + frame_ids * t_b + [0] if t_b else [])
        # left padding keeps every row's frame tokens at the same positions
        ids = torch.tensor([[0] * (width - len(x)) + x + body for x in texts], device=frames_a.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * (len(x) + len(body)) for x in texts], device=frames_a.device)
        kinds = (ids == qwen.image_token_id).int()
        frame_len = len(frame_ids)
        progress_a = width + torch.arange(t_a, device=ids.device) * frame_len + frame_len - 1
        special_positions = [(progress_a, 0)]
        if t_b:
            split = width + t_a * frame_len
            progress_b = split + 1 + torch.arange(t_b, device=ids.device) * frame_len + frame_len - 1
            special_positions += [(torch.tensor([split], device=ids.device), 1), (progress_b, 0), (torch.tensor([ids.shape[1] - 1], device=ids.device), 2)]
        images = frames_a.flatten(0, 1) if frames_b is None else torch.cat([frames_a, frames_b], 1).flatten(0, 1)
        grid = torch.tensor([[1, self.config.image_size // self.patch, self.config.image_size // self.patch]] * images.shape[0], device=ids.device)
        position_ids, _ = self.model.get_rope_index(ids, kinds, image_grid_thw=grid, attention_mask=attention)
        embeds = self.model.get_input_embeddings()(ids)
        for positions, which in special_positions:
            embeds[:, positions] = self.special[which].to(embeds.dtype)
        hidden = self.model(
            inputs_embeds=embeds, attention_mask=attention, position_ids=position_ids,
            pixel_values=self._pixels(images).to(embeds.dtype), image_grid_thw=grid,
        ).last_hidden_state.float()
        if not t_b:
            return BackboneOutput(hidden[:, progress_a], None, None)
        return BackboneOutput(hidden[:, progress_a], hidden[:, progress_b], hidden[:, -1])
