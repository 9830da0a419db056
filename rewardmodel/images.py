"""Resizing frames to a model's square input (bilinear, antialiased when shrinking, as the models train), and making
them grey: the one place each is done."""

import torch
import torch.nn.functional as F


def greyscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) floats -> the same shape, each pixel's luma (ITU-R BT.601 weights) in all three channels."""
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device)
    return (images * luma[:, None, None]).sum(1, keepdim=True).expand_as(images)


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size); uint8 channels-last input stays uint8 (torch's fast kernel), floats stay
    floats; already the right size: returned as it is."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    # antialiasing changes nothing when enlarging (the same values to float precision), where its kernel is 4x slower
    shrinking = size < max(images.shape[-2:])
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=shrinking, align_corners=False)
