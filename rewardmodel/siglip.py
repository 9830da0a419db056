"""A SigLIP (transformers' SiglipModel) on arrays: embedding frames and texts into one space, and training a small one
from scratch with SigLIP's sigmoid loss. Loading checkpoints, data and saving live in curate/retrieval.py."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rewardmodel.errors import RewardModelError
from rewardmodel.images import resize_square


@dataclass(frozen=True)
class Siglip:
    """A loaded SigLIP model with its tokenizer; embeds frames and texts into one L2-normalised space."""

    model: object  # transformers.SiglipModel
    tokenizer: object
    model_id: str  # siglip:NAME@HASH12, as the index calls it
    source: str
    device: str

    @property
    def image_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, S, S) in SigLIP's [-1, 1] normalisation (mean 0.5, std 0.5 per channel)."""
        assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == torch.uint8, (frames.shape, frames.dtype)
        return resize_square(frames.permute(0, 3, 1, 2).float().to(self.device), self.image_size) / 127.5 - 1.0

    def tokens(self, texts: Sequence[str]) -> torch.Tensor:
        """SigLIP's text tower pools the last position, so every text is padded to the full length."""
        length = min(64, int(self.model.config.text_config.max_position_embeddings))
        return self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=length, return_tensors="pt")["input_ids"].to(self.device)

    @torch.inference_mode()
    def embed_images(self, frames: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        out = [self.model.get_image_features(pixel_values=self.pixels(frames[s : s + batch_size])).pooler_output for s in range(0, len(frames), batch_size)]
        return F.normalize(torch.cat(out).float(), dim=-1).cpu().numpy() if out else np.zeros((0, self.dim), np.float32)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return F.normalize(self.model.get_text_features(input_ids=self.tokens(texts)).pooler_output.float(), dim=-1).cpu().numpy()

    @property
    def dim(self) -> int:
        return int(self.model.config.text_config.projection_size)


def make_tokenizer(sentences: Sequence[str]):
    """A WordPiece tokenizer learnt from the sentences (no download needed); unknown words map to [UNK]."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(sentences), trainers.WordPieceTrainer(vocab_size=2000, special_tokens=["[PAD]", "[UNK]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


@dataclass(frozen=True)
class SiglipTrainConfig:
    """A small SigLIP's size and its optimisation."""

    steps: int = 1500
    batch_size: int = 64
    lr: float = 5e-4
    image_size: int = 64
    width: int = 128
    layers: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise RewardModelError(f"--steps must be >= 1 and --batch-size >= 2, got {self.steps} and {self.batch_size}")
        if self.image_size < 16 or self.image_size % 8:
            raise RewardModelError(f"--image-size must be a multiple of 8 and at least 16, got {self.image_size}")


def train_small_siglip(frames: torch.Tensor, labels: np.ndarray, instructions: list[str], tokenizer, config: SiglipTrainConfig,
                       on_step: Callable[[int, float], None] | None = None) -> tuple[object, list[dict]]:
    """Train from scratch with SigLIP's sigmoid loss, where every pair of a frame (N, S, S, 3 uint8) and its own
    label's instruction is positive (frames of other episodes of the same task included); returns the model and the
    loss per step."""
    from transformers import SiglipConfig, SiglipModel

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    heads = max(1, config.width // 32)
    model_config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=config.width, intermediate_size=2 * config.width, num_hidden_layers=2,
                         num_attention_heads=heads, max_position_embeddings=16, projection_size=config.width,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(image_size=config.image_size, patch_size=8, hidden_size=config.width, intermediate_size=2 * config.width,
                           num_hidden_layers=config.layers, num_attention_heads=heads),
    )
    model = SiglipModel(model_config).train()
    with torch.no_grad():  # the SigLIP paper's start, t' = log 10 and b = -10: transformers starts at scale 1, bias 0,
        model.logit_scale.fill_(math.log(10.0))  # from which 20 tasks' 1-in-20 positives collapsed every embedding
        model.logit_bias.fill_(-10.0)
    siglip = Siglip(model, tokenizer, "", "", "cpu")
    tokens = siglip.tokens(instructions)
    temperature = [model.logit_scale, model.logit_bias]
    weights = [p for p in model.parameters() if all(p is not t for t in temperature)]
    optimizer = torch.optim.AdamW([{"params": weights}, {"params": temperature, "weight_decay": 0.0}], lr=config.lr, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps, pct_start=0.1)
    history = []
    for step in range(1, config.steps + 1):
        pick = rng.integers(0, len(frames), config.batch_size)
        batch = frames[pick]
        if rng.random() < 0.5:
            batch = batch.flip(2)  # mirrored views: the model should know tasks, not one camera's left and right
        out = model(input_ids=tokens, pixel_values=siglip.pixels(batch))
        logits = out.logits_per_image  # (B images, T instructions)
        targets = torch.from_numpy(labels[pick]).unsqueeze(1) == torch.arange(len(instructions)).unsqueeze(0)
        loss = -F.logsigmoid(torch.where(targets, logits, -logits)).sum(1).mean()
        if not torch.isfinite(loss):
            raise RewardModelError(f"SigLIP training diverged (loss {loss.item()}) at step {step}; lower --lr")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history.append({"step": step, "loss": loss.item()})
        if on_step is not None:
            on_step(step, loss.item())
    return model.eval(), history
