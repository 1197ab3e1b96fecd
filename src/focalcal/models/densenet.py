"""DenseNet for CIFAR-size inputs as in the focal-loss / dual-focal-loss code (``Net/densenet.py``).

Huang et al. (CVPR 2017) DenseNet-BC: a 3×3 stem with ``2·growth`` channels (no max-pool), four
dense blocks of bottleneck layers (BN-ReLU-1×1 conv to ``4·growth`` - BN-ReLU-3×3 conv to
``growth``, output concatenated in front of the input), transitions (BN-ReLU-1×1 conv to
``floor(compression · channels)``, 2×2 average pool) between blocks, final BN-ReLU, global average
pooling and a linear layer. DenseNet-121: blocks [6, 12, 24, 16], growth 32, compression 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DenseNet", "densenet121"]


class _DenseLayer(nn.Module):
    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class _Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNet(nn.Module):
    """CIFAR DenseNet-BC.

    Shapes: input (N, in_channels, H, W) float, H, W >= 8 → logits (N, num_classes).

    Example:
        >>> import torch
        >>> from focalcal.models import DenseNet
        >>> DenseNet((1, 1, 1, 1), growth=4)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        blocks: Sequence[int] = (6, 12, 24, 16),
        growth: int = 32,
        compression: float = 0.5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        planes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, n_layers in enumerate(blocks):
            layers = []
            for _ in range(n_layers):
                layers.append(_DenseLayer(planes, growth))
                planes += growth
            stages.append(nn.Sequential(*layers))
            if i < len(blocks) - 1:
                out_planes = math.floor(planes * compression)
                stages.append(_Transition(planes, out_planes))
                planes = out_planes
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.features(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def densenet121(num_classes: int = 10, in_channels: int = 3) -> DenseNet:
    """DenseNet-121 (CIFAR): blocks [6, 12, 24, 16], growth 32, compression 0.5."""
    return DenseNet((6, 12, 24, 16), 32, 0.5, num_classes, in_channels)
