"""Models: parameter counts from the architecture formulas, shapes, registry and compatibility."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from focalcal.models import (
    MODELS,
    BottleneckResNet,
    DenseNet,
    WideResNet,
    check_compatibility,
    count_parameters,
    get_model,
)
from focalcal.models.resnet import _ShortcutA

# --- independent parameter counts, written from the papers' architecture descriptions ---------


def conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k  # every conv here is bias-free


def bn(c: int) -> int:
    return 2 * c


def linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def he_cifar_resnet(n: int, classes: int, in_ch: int = 3, option: str = "A") -> int:
    total = conv(in_ch, 16, 3) + bn(16)
    cin = 16
    for width in (16, 32, 64):
        for b in range(n):
            total += conv(cin, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
            if b == 0 and cin != width and option == "B":
                total += conv(cin, width, 1) + bn(width)
            cin = width
    return total + linear(64, classes)


def bottleneck_resnet(blocks: list[int], classes: int, in_ch: int = 3, pool: int = 1) -> int:
    total = conv(in_ch, 64, 3) + bn(64)
    cin = 64
    for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True):
        for b in range(n):
            total += conv(cin, planes, 1) + bn(planes)
            total += conv(planes, planes, 3) + bn(planes)
            total += conv(planes, 4 * planes, 1) + bn(4 * planes)
            if (b == 0 and stride != 1) or cin != 4 * planes:
                total += conv(cin, 4 * planes, 1) + bn(4 * planes)
            cin = 4 * planes
    return total + linear(2048 * pool * pool, classes)


def wrn(depth: int, k: int, classes: int) -> int:
    n = (depth - 2) // 6
    total = conv(3, 16, 3) + bn(16)
    cin = 16
    for width in (16 * k, 32 * k, 64 * k):
        for b in range(n):
            total += conv(cin, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
            if b == 0:  # every stage starts with a shape change (16 → 16k, stride 2 later)
                total += conv(cin, width, 1) + bn(width)
            cin = width
    return total + linear(64 * k, classes)


def densenet(blocks: list[int], growth: int, classes: int) -> int:
    c = 2 * growth
    total = conv(3, c, 3)
    for i, n in enumerate(blocks):
        for _ in range(n):
            total += bn(c) + conv(c, 4 * growth, 1) + bn(4 * growth) + conv(4 * growth, growth, 3)
            c += growth
        if i < len(blocks) - 1:
            out = math.floor(c * 0.5)
            total += bn(c) + conv(c, out, 1)
            c = out
    return total + bn(c) + linear(c, classes)


@pytest.mark.parametrize(
    ("name", "classes", "kwargs", "expected"),
    [
        ("resnet20", 10, {}, he_cifar_resnet(3, 10)),
        ("resnet8", 10, {}, he_cifar_resnet(1, 10)),
        ("resnet20", 100, {"shortcut": "B"}, he_cifar_resnet(3, 100, option="B")),
        ("resnet20", 10, {"in_channels": 1}, he_cifar_resnet(3, 10, in_ch=1)),
        ("resnet110_he", 10, {}, he_cifar_resnet(18, 10)),
        ("resnet50", 10, {}, bottleneck_resnet([3, 4, 6, 3], 10)),
        ("resnet50", 200, {"pool_size": 2}, bottleneck_resnet([3, 4, 6, 3], 200, pool=2)),
        ("resnet110", 100, {}, bottleneck_resnet([3, 4, 26, 3], 100)),
        ("wide_resnet26_10", 10, {}, wrn(26, 10, 10)),
        ("densenet121", 100, {}, densenet([6, 12, 24, 16], 32, 100)),
    ],
)
def test_parameter_counts_match_architecture_formula(name, classes, kwargs, expected):
    model = get_model(name, num_classes=classes, **kwargs)
    assert count_parameters(model) == expected


def test_published_sizes():
    # He et al. Table 6: ResNet-20 has 0.27M parameters; Zagoruyko & Komodakis: WRN-26-10 ≈ 36.5M.
    assert round(he_cifar_resnet(3, 10) / 1e6, 2) == 0.27
    assert round(wrn(26, 10, 10) / 1e6, 1) == 36.5


def test_small_cnn_and_mlp_counts():
    expected_cnn = (
        conv(1, 32, 3) + 32 + bn(32) + conv(32, 64, 3) + 64 + bn(64)  # convs carry biases here
        + linear(64 * 7 * 7, 128) + linear(128, 10)
    )  # fmt: skip
    assert count_parameters(get_model("small_cnn", 10, in_channels=1)) == expected_cnn
    net = get_model("mlp", num_classes=20, in_features=384, hidden=64, depth=3)
    assert count_parameters(net) == linear(384, 64) + 2 * linear(64, 64) + linear(64, 20)
    assert count_parameters(get_model("mlp", 5, in_features=7, depth=0)) == linear(7, 5)


def test_forward_shapes_any_size_and_channels():
    torch.manual_seed(0)
    for name, shape in [("resnet8", (2, 3, 32, 32)), ("resnet20", (2, 3, 24, 40))]:
        assert get_model(name, 7)(torch.randn(shape)).shape == (2, 7)
    assert get_model("resnet8", 4, in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 4)
    cnn = get_model("small_cnn", 10, in_channels=1)
    assert cnn(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert get_model("small_cnn", 10, in_channels=3)(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    # reduced versions of the big families, forward + backward reach every parameter
    for net, x in [
        (BottleneckResNet((1, 1, 1, 1), num_classes=5, in_channels=1), torch.randn(2, 1, 16, 16)),
        (WideResNet(depth=8, width=1, num_classes=5), torch.randn(2, 3, 16, 16)),
        (DenseNet((1, 1, 1, 1), growth=4, num_classes=5), torch.randn(2, 3, 16, 16)),
    ]:
        out = net(x)
        assert out.shape == (2, 5)
        out.sum().backward()
        assert all(p.grad is not None for p in net.parameters())


def test_option_a_shortcut_is_subsample_and_zero_pad():
    x = torch.randn(2, 16, 8, 8)
    y = _ShortcutA(16, 32, stride=2)(x)
    expected = torch.zeros(2, 32, 4, 4)
    expected[:, 8:24] = x[:, :, ::2, ::2]
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    assert (
        sum(
            isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
            for m in get_model("resnet20", 10).modules()
        )
        == 0
    )


def test_papers_resnet110_is_four_stage_bottleneck():
    net = get_model("resnet110", 10)
    assert [len(s) for s in (net.layer1, net.layer2, net.layer3, net.layer4)] == [3, 4, 26, 3]
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    weighted_in_blocks = sum(
        isinstance(m, nn.Conv2d) and m.kernel_size in ((1, 1), (3, 3)) and "shortcut" not in name
        for name, m in net.named_modules()
        if name.startswith("layer")
    )
    assert weighted_in_blocks + 2 == 110  # 3 convs per block + stem + fc


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown model 'resnet21'.*resnet20"):
        get_model("resnet21", 10)
    with pytest.raises(ValueError, match="num_classes"):
        get_model("resnet20", 0)
    with pytest.raises(TypeError, match="num_classes"):
        get_model("resnet20", 10.0)
    with pytest.raises(TypeError, match="in_features"):
        get_model("mlp", 10)
    with pytest.raises(TypeError, match=r"resnet20: unknown option\(s\) \['in_features'\]"):
        get_model("resnet20", 10, in_features=384)
    with pytest.raises(TypeError, match=r"\['hiden'\].*'hidden'"):
        get_model("mlp", 10, in_features=4, hiden=8)
    with pytest.raises(ValueError, match="shortcut"):
        get_model("resnet20", 10, shortcut="C")
    with pytest.raises(ValueError, match="depth"):
        WideResNet(depth=27)
    assert {
        "resnet50",
        "resnet110",
        "wide_resnet26_10",
        "densenet121",
        "resnet20",
        "resnet8",
        "small_cnn",
        "mlp",
    } <= set(MODELS.names())


def _ds(shape, classes=10):
    return SimpleNamespace(input_shape=shape, num_classes=classes, name="toy")


def test_check_compatibility():
    check_compatibility(_ds((3, 32, 32)), get_model("resnet8", 10))
    check_compatibility(_ds((384,), 20), get_model("mlp", 20, in_features=384, hidden=8, depth=1))
    cases = [
        (_ds((1, 28, 28)), get_model("resnet8", 10), "in_channels=1"),
        (_ds((3, 32, 32), 100), get_model("resnet8", 10), "num_classes=100"),
        (_ds((300,), 20), get_model("mlp", 20, in_features=384), "in_features=300"),
        (_ds((3, 32, 32)), get_model("mlp", 10, in_features=3072), "images"),
        (_ds((384,), 10), get_model("resnet8", 10), "mlp"),
        (_ds((1, 1, 1)), get_model("small_cnn", 10, in_channels=1), "cannot process"),
    ]
    for ds, model, message in cases:
        with pytest.raises(ValueError, match=message):
            check_compatibility(ds, model)

    class NoAttrs(nn.Module):  # a user model without the attributes: the dry run catches it
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(12, 3)

        def forward(self, x):
            return self.fc(x.flatten(1))

    check_compatibility(_ds((3, 2, 2), 3), NoAttrs())
    with pytest.raises(ValueError, match="cannot process"):
        check_compatibility(_ds((3, 4, 4), 3), NoAttrs())
    with pytest.raises(ValueError, match=r"expected logits of shape \(1, 5\)"):
        check_compatibility(_ds((3, 2, 2), 5), NoAttrs())
    net = get_model("resnet8", 10).train()
    check_compatibility(_ds((3, 32, 32)), net)
    assert net.training  # mode restored after the dry run
