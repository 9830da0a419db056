"""Resizing frames to a model's square input: the one place it is done (bilinear, antialiased when shrinking, as the
models train)."""

import torch
import torch.nn.functional as F


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size); uint8 channels-last input stays uint8 (torch's fast kernel), floats stay
    floats; already the right size: returned as it is."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    # antialiasing changes nothing when enlarging (the same values to float precision), where its kernel is 4x slower
    shrinking = size < max(images.shape[-2:])
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=shrinking, align_corners=False)
