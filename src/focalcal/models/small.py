"""Small networks: a CNN for 28×28 images and an MLP for feature vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MLP", "SmallCNN", "mlp", "small_cnn"]


class SmallCNN(nn.Module):
    """Two conv blocks and a two-layer head, sized for 28×28 (MNIST-like) inputs.

    ``conv3×3(in→32)-BN-ReLU-maxpool2 → conv3×3(32→64)-BN-ReLU-maxpool2 → adaptive avg-pool to
    7×7 (identity on 28×28) → linear 3136→128-ReLU-dropout → linear 128→C``.

    Shapes: input (N, in_channels, H, W) float → logits (N, num_classes).

    Example:
        >>> import torch
        >>> from focalcal.models import get_model
        >>> get_model("small_cnn", num_classes=10, in_channels=1)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, hidden: int = 128, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def small_cnn(
    num_classes: int = 10, in_channels: int = 1, hidden: int = 128, dropout: float = 0.25
) -> SmallCNN:
    """:class:`SmallCNN` (``hidden=128``, ``dropout=0.25`` by default)."""
    return SmallCNN(num_classes, in_channels, hidden, dropout)


class MLP(nn.Module):
    """Multi-layer perceptron for feature vectors (e.g. sentence embeddings).

    ``depth`` hidden layers ``Linear-ReLU(-Dropout)`` of width ``hidden``, then ``Linear → C``;
    ``depth=0`` is multinomial logistic regression.

    Shapes: input (N, in_features) float → logits (N, num_classes).

    Example:
        >>> import torch
        >>> from focalcal.models import get_model
        >>> net = get_model("mlp", num_classes=20, in_features=384, hidden=64, depth=2)
        >>> net(torch.zeros(5, 384)).shape
        torch.Size([5, 20])
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = 256,
        depth: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth: expected an integer >= 0, got {depth!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.in_features = in_features
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.flatten(x, 1))


def mlp(
    in_features: int,
    num_classes: int,
    hidden: int = 256,
    depth: int = 2,
    dropout: float = 0.0,
) -> MLP:
    """:class:`MLP` with ``depth`` hidden layers of width ``hidden``."""
    return MLP(in_features, num_classes, hidden, depth, dropout)
