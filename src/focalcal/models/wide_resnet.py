"""Wide-ResNet-26-10 as in the focal-loss / dual-focal-loss code (``Net/wide_resnet.py``).

Zagoruyko & Komodakis (BMVC 2016) widths with the papers' post-activation layout: a 3×3 stem with
16 channels + BN + ReLU, three stages of ``n = (depth − 2) / 6`` basic blocks (conv-BN-ReLU-conv-BN,
add, ReLU) with ``16k, 32k, 64k`` channels and strides 1/2/2, a 1×1 conv + BN projection on the
first block of every stage, no dropout, He-normal initialisation, global average pooling
(``AvgPool2d(8)`` on 32×32 inputs) and a linear layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["WideResNet", "wide_resnet26_10"]


class _WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class WideResNet(nn.Module):
    """Wide ResNet-``depth``-``width`` (post-activation, papers' variant).

    Shapes: input (N, in_channels, H, W) float → logits (N, num_classes).

    Args:
        depth: 6n + 2 (26 → n = 4 blocks per stage).
        width: widening factor k (stage widths 16k, 32k, 64k).

    Example:
        >>> import torch
        >>> from focalcal.models import WideResNet
        >>> WideResNet(depth=8, width=1)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, depth: int = 26, width: int = 10, num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth: expected 6n + 2 with n >= 1 (8, 14, 20, 26, ...), got {depth}"
            )
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        stages = []
        for planes, stride in zip((16 * width, 32 * width, 64 * width), (1, 2, 2), strict=True):
            layers = []
            for s in [stride] + [1] * (n - 1):
                layers.append(_WideBlock(in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def wide_resnet26_10(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """WRN-26-10 of the papers: 3 stages × 4 post-activation basic blocks, widths 160/320/640."""
    return WideResNet(26, 10, num_classes, in_channels)
