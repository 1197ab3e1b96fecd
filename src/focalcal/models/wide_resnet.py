r"""Wide-ResNet-26-10 as in the focal-loss / dual-focal-loss code (``Net/wide_resnet.py``).

Zagoruyko & Komodakis (BMVC 2016) widths with the papers' post-activation layout: a 3×3 stem with
16 channels + BN + ReLU, three stages of ``n = (depth − 2) / 6`` basic blocks (conv-BN-ReLU-conv-BN,
add, ReLU) with ``16k, 32k, 64k`` channels and strides 1/2/2, a 1×1 conv + BN projection on the
first block of every stage, no dropout, He-normal initialisation of the convolutions
(:math:`\mathcal{N}(0, 2 / (k^2 c_{out}))`), global average pooling (``AvgPool2d(8)`` on 32×32
inputs) and a linear layer. That is He et al.'s CIFAR ResNet with wider stages and option-B
shortcuts, so it is built from :class:`~focalcal.models.CifarResNet`.
"""

from __future__ import annotations

from .._validation import check_int
from .resnet import CifarResNet

__all__ = ["WideResNet", "wide_resnet26_10"]


class WideResNet(CifarResNet):
    """Wide ResNet-``depth``-``width`` (post-activation, the papers' variant).

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
        depth = check_int(depth, "depth", min_value=8)
        width = check_int(width, "width", min_value=1)
        if (depth - 2) % 6:
            raise ValueError(
                f"depth: expected 6n + 2 with n >= 1 (8, 14, 20, 26, ...), got {depth}"
            )
        widths = (16 * width, 32 * width, 64 * width)
        super().__init__((depth - 2) // 6, num_classes, in_channels, shortcut="B", widths=widths)


def wide_resnet26_10(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """WRN-26-10 of the papers: 3 stages × 4 post-activation basic blocks, widths 160/320/640."""
    return WideResNet(26, 10, num_classes, in_channels)
