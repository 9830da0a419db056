"""Data-parallel training under torchrun (`torchrun --nproc-per-node N -m curate.cli rm train ...`): one process per
rank, gloo on CPU and nccl on GPU, gradients averaged by DistributedDataParallel. Rank 0 logs, evaluates and saves."""

import hashlib
import os

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """Processes in the run: torchrun's WORLD_SIZE, 1 when not launched by torchrun."""
    return int(os.environ.get("WORLD_SIZE", 1))


def device_for(requested: str) -> torch.device:
    """The rank's device: its own GPU (LOCAL_RANK) when training on cuda, else the CPU."""
    if requested.startswith("cuda") and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(requested)


def start(device: torch.device) -> None:
    if world_size() > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP over the process group (it broadcasts rank 0's initial weights); the model itself on one process.
    static_graph: every step uses the same parameters, so DDP learns on the first step which are used (a head an
    ablation leaves without gradients, another backbone's unused weights) instead of searching the autograd graph each
    step and warning on every rank when it finds none; the speed on 2 CPU ranks is within run-to-run noise
    (docs/rewardmodel.md)."""
    if world_size() == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=True)


def all_rows(x: Tensor) -> Tensor:
    """Every rank's `x` (the same shape on each) concatenated along the first axis in rank order; `x` alone outside
    torchrun. Other ranks' rows carry no gradient: for what has none (frozen embeddings, labels)."""
    if world_size() == 1 or not dist.is_initialized():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    parts[rank()] = x
    return torch.cat(parts)


def weight_digests(model: torch.nn.Module) -> list[str]:
    """Every rank's SHA-256 of its weights, in rank order: all equal when the replicas stayed in step."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    if world_size() == 1:
        return [digest.hexdigest()]
    gathered: list[str | None] = [None] * world_size()
    dist.all_gather_object(gathered, digest.hexdigest())
    return [str(d) for d in gathered]
