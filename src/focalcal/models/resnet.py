"""ResNets used by the papers (4-stage bottleneck) and He et al.'s classic CIFAR ResNets.

Two families live here because they share nothing but the name:

* :class:`BottleneckResNet` — the "kuangliu" CIFAR ResNet of the focal-loss and dual-focal-loss
  code (``Net/resnet.py``): a 3×3 stride-1 stem with 64 channels, **no max-pool**, four stages of
  bottleneck blocks with 64/128/256/512 planes (×4 expansion) and strides 1/2/2/2, global average
  pooling and a linear layer. ``resnet50`` uses blocks [3, 4, 6, 3]; the papers' ``resnet110``
  uses [3, 4, 26, 3] — it is *not* He et al.'s 3-stage ResNet-110.
* :class:`CifarResNet` — He et al. (CVPR 2016, §4.2) CIFAR ResNet-(6n+2): a 3×3 stem with 16
  channels, three stages of ``n`` basic blocks with 16/32/64 channels. ``resnet20`` (n = 3) and
  ``resnet8`` (n = 1). Shortcut option A (the paper's CIFAR choice: parameter-free identity with
  stride-2 subsampling and zero-padded channels) by default, option B (1×1 conv + BN projection
  when the shape changes) on request.

All models use adaptive average pooling, so any input size ≥ 1 pixel after the strides works
(32×32 inputs reproduce the official ``avg_pool2d(out, 4)`` exactly) and accept ``in_channels``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_choice

__all__ = [
    "BottleneckResNet",
    "CifarResNet",
    "resnet8",
    "resnet20",
    "resnet32",
    "resnet50",
    "resnet56",
    "resnet110",
    "resnet110_he",
]


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Option-B shortcut: 1×1 conv (stride) + BN."""
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


def _stages(
    make_block: Callable[[int, int, int], nn.Module],
    in_planes: int,
    plan: Sequence[tuple[int, int, int]],
    expansion: int = 1,
) -> tuple[list[nn.Sequential], int]:
    """One ``nn.Sequential`` per ``(planes, n_blocks, stride)``; the stride is on the first block.

    Returns the stages and the channels they end with.
    """
    stages = []
    for planes, n_blocks, stride in plan:
        layers = []
        for s in [stride] + [1] * (n_blocks - 1):
            layers.append(make_block(in_planes, planes, s))
            in_planes = planes * expansion
        stages.append(nn.Sequential(*layers))
    return stages, in_planes


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride) → 1×1 (×4) bottleneck with a projection shortcut on shape change."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = _projection(in_planes, out_planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class BottleneckResNet(nn.Module):
    """The papers' 4-stage bottleneck ResNet for CIFAR-size inputs (FC/DFL ``Net/resnet.py``).

    Shapes: input (N, in_channels, H, W) float → logits (N, num_classes).

    Args:
        blocks: bottleneck blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: output logits.
        in_channels: input image channels.
        pool_size: side of the final adaptive average pool; 1 is the CIFAR nets
            (FC ``avg_pool2d(out, 4)`` on 32×32), 2 the papers' Tiny-ImageNet ResNet-50
            (``AdaptiveAvgPool2d(2)``, linear 2048·4 → C).

    Example:
        >>> import torch
        >>> from focalcal.models import get_model
        >>> net = get_model("resnet50", num_classes=10)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        blocks: Sequence[int],
        num_classes: int = 10,
        in_channels: int = 3,
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        plan = list(zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True))
        stages, in_planes = _stages(Bottleneck, 64, plan, Bottleneck.expansion)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.fc = nn.Linear(in_planes * pool_size * pool_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.pool(out), 1))


def resnet50(num_classes: int = 10, in_channels: int = 3, pool_size: int = 1) -> BottleneckResNet:
    """ResNet-50 of the papers: bottleneck blocks [3, 4, 6, 3], 3×3 stem, no max-pool."""
    return BottleneckResNet((3, 4, 6, 3), num_classes, in_channels, pool_size)


def resnet110(num_classes: int = 10, in_channels: int = 3, pool_size: int = 1) -> BottleneckResNet:
    """ "ResNet-110" of the papers: bottleneck blocks [3, 4, 26, 3] (3·36 + 2 = 110 layers).

    This is the network the focal-loss and dual-focal-loss results were produced with; it is not
    He et al.'s 3-stage basic-block ResNet-110 (that one is ``get_model("resnet110_he")``).
    """
    return BottleneckResNet((3, 4, 26, 3), num_classes, in_channels, pool_size)


class _ShortcutA(nn.Module):
    """He et al. option A: subsample by ``stride`` and zero-pad the extra channels (no params)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = out_planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    """3×3 → 3×3 basic block, post-activation, with option-A or option-B shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = _ShortcutA(in_planes, planes, stride)
            else:
                self.shortcut = _projection(in_planes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. CIFAR ResNet-(6n+2): 3 stages × ``n`` basic blocks, 16/32/64 channels.

    Shapes: input (N, in_channels, H, W) float → logits (N, num_classes).

    Args:
        n: basic blocks per stage (depth = 6n + 2).
        shortcut: ``"A"`` (zero-padding identity, the paper's CIFAR choice, 0.27M params for
            ResNet-20) or ``"B"`` (1×1 conv + BN projection where the shape changes).
        widths: channels of the three stages (the stem has 16); ``(16k, 32k, 64k)`` with
            shortcut B is the papers' Wide-ResNet (:class:`~focalcal.models.WideResNet`).

    Reference: He, Zhang, Ren, Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016, §4.2.

    Example:
        >>> import torch
        >>> from focalcal.models import get_model
        >>> net = get_model("resnet20", num_classes=10)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        n: int,
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: str = "A",
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        shortcut = check_choice(str(shortcut).upper(), "shortcut", ("A", "B"))
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        plan = [(widths[0], n, 1), (widths[1], n, 2), (widths[2], n, 2)]
        stages, _ = _stages(lambda i, p, st: BasicBlock(i, p, st, shortcut), 16, plan)
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():  # He init for convs; the linear head keeps torch's
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet8(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """He et al. CIFAR ResNet-8 (n = 1)."""
    return CifarResNet(1, num_classes, in_channels, shortcut)


def resnet20(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """He et al. CIFAR ResNet-20 (n = 3), option-A shortcuts by default (0.27M parameters)."""
    return CifarResNet(3, num_classes, in_channels, shortcut)


def resnet32(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """He et al. CIFAR ResNet-32 (n = 5)."""
    return CifarResNet(5, num_classes, in_channels, shortcut)


def resnet56(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """He et al. CIFAR ResNet-56 (n = 9)."""
    return CifarResNet(9, num_classes, in_channels, shortcut)


def resnet110_he(num_classes: int = 10, in_channels: int = 3, shortcut: str = "A") -> CifarResNet:
    """He et al. CIFAR ResNet-110 (n = 18), the classic one — not the papers' ``resnet110``."""
    return CifarResNet(18, num_classes, in_channels, shortcut)
