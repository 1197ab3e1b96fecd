"""The fused C++ CPU kernel of the focal family (``set_cpu_kernel("fused")``).

Its statistics are checked against brute force in its own arithmetic (log p = (x − m) − log Σ,
from the m and log Σ it returns) on adversarial rows, in both layouts and across vector tails;
its losses against the eager kernel (itself checked against the official vectors) and against
``F.cross_entropy`` at γ = 0; the official vectors and float64 ``gradcheck`` also run under it
(``cpu_kernel`` fixture in test_losses_parity.py / test_losses_gradcheck.py).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from focalcal.losses import _fused as fused_module
from focalcal.losses import get_cpu_kernel, get_loss, set_cpu_kernel
from focalcal.losses.gamma import ScheduledGamma
from loss_contract import adversarial_runner_up_rows, require_fused_kernel

FOCAL_FAMILY: list[tuple[str, dict]] = [
    ("focal", {"gamma": 3.0}),
    ("focal", {"gamma": 0.5}),
    ("focal", {"gamma": "lambertw"}),
    ("flsd53", {}),
    ("flsd52", {}),
    ("focal", {"gamma": "flsd53_sst"}),
    ("dual_focal", {"gamma": 5.0}),
    ("dual_focal", {"gamma": 2.0}),
    ("dual_flsd53", {}),
    ("inverse_focal", {}),
    ("adafocal", {}),
    ("ada_dual_focal", {}),
]


def _brute_force(logits: torch.Tensor, target: torch.Tensor, shift, log_sum):
    """Per row: log p_y, log p_j and j by the kernel's definition, with log p computed as the
    kernel does, (x − m) − log Σ (IEEE subtraction, so bitwise the same): p_j is the largest
    log p strictly below log p_y; j the class with the largest logit among those holding it,
    lowest index among equal logits; (−inf, any) when there is no candidate."""
    out = []
    for x, y, m, ls in zip(logits, target.tolist(), shift.tolist(), log_sum.tolist(), strict=True):
        v = (x - x.new_tensor(m)) - x.new_tensor(ls)
        lpy = v[y].item()
        below = [(v[c].item(), x[c].item(), -c) for c in range(len(x)) if v[c].item() < lpy]
        best = max(below) if below else (-math.inf, 0.0, 0)
        out.append((lpy, best[0], -best[2]))
    return out


def _stats(ext, logits: torch.Tensor, target: torch.Tensor, layout: str):
    """Per-row (log_p_y, log_p_j, index_j, shift, log_sum) with rows laid out as (N, C, 1), or
    transposed into one (1, C, N) item grid (the strided path)."""
    if layout == "rows":
        x3, t2 = logits.unsqueeze(2), target.unsqueeze(1)
    else:
        x3, t2 = logits.t().unsqueeze(0).contiguous(), target.unsqueeze(0)
    empty = logits.new_empty(0)
    return [s.reshape(-1) for s in ext.stats(x3, t2, empty, -100, True, True)[:5]]


@pytest.mark.parametrize("layout", ["rows", "strided"])
@pytest.mark.parametrize("width", [12, 17, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_runner_up_is_exact_on_adversarial_rows(fused_kernel, dtype, width, layout) -> None:
    logits, target = adversarial_runner_up_rows(dtype, width=width)
    log_p_y, log_p_j, index_j, shift, log_sum = _stats(fused_kernel, logits, target, layout)
    torch.testing.assert_close(shift, logits.max(dim=1).values, rtol=0, atol=0)
    for i, (lpy, lpj, j) in enumerate(_brute_force(logits, target, shift, log_sum)):
        assert log_p_y[i].item() == lpy, (i, logits[i], target[i])
        assert log_p_j[i].item() == lpj, (i, logits[i], target[i])
        if lpj > -math.inf:
            assert index_j[i].item() == j, (i, logits[i], target[i])
        assert 0 <= index_j[i].item() < width


@pytest.mark.parametrize("layout", ["rows", "strided"])
@pytest.mark.parametrize("num_classes", [1, 2, 7, 8, 15, 16, 17, 31, 33, 100])
def test_runner_up_with_many_exact_ties_across_vector_tails(
    fused_kernel, num_classes, layout
) -> None:
    """Small-integer logits tie constantly; every class count around the vector widths (16
    float32 lanes with AVX-512, 8 with AVX2) exercises full vectors, masked tails and both."""
    g = torch.Generator().manual_seed(num_classes)
    for dtype in (torch.float32, torch.float64):
        logits = torch.randint(-3, 4, (64, num_classes), generator=g).to(dtype)
        target = torch.randint(0, num_classes, (64,), generator=g)
        log_p_y, log_p_j, index_j, shift, log_sum = _stats(fused_kernel, logits, target, layout)
        for i, (lpy, lpj, j) in enumerate(_brute_force(logits, target, shift, log_sum)):
            assert (log_p_y[i].item(), log_p_j[i].item()) == (lpy, lpj), (i, logits[i])
            if lpj > -math.inf:
                assert index_j[i].item() == j, (i, logits[i], target[i])
        # and the statistics are those of log_softmax up to rounding
        reference = torch.log_softmax(logits.double(), dim=1).gather(1, target[:, None])
        torch.testing.assert_close(log_p_y.double(), reference.squeeze(1), rtol=1e-6, atol=1e-6)


def _loss_and_grad(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    target: torch.Tensor,
    kernel: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Value and logit gradient of ``loss`` under the CPU ``kernel``."""
    set_cpu_kernel(kernel)
    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    # a non-uniform upstream gradient for "none" (and a non-contiguous one: an expanded column)
    upstream = torch.linspace(0.5, 1.5, value.numel()).reshape(value.shape) if value.ndim else 1.0
    (value * upstream).sum().backward()
    return value.detach(), x.grad


def _assert_kernels_agree(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
    target: torch.Tensor,
    tol: float,
) -> None:
    """The fused kernel's value and gradient equal the eager kernel's to ``tol`` (relative to
    the largest entry)."""
    eager = _loss_and_grad(loss, logits, target, "eager")
    fused = _loss_and_grad(loss, logits, target, "fused")
    for a, b in zip(eager, fused, strict=True):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol * float(a.abs().max()))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("name", "kwargs"), FOCAL_FAMILY)
def test_fused_matches_eager_kernel(fused_kernel, name, kwargs, reduction) -> None:
    """(N, C), (N, C, H, W) and a transposed (non-contiguous) input, class weights and ignored
    items, float64 (tight) and float32."""
    g = torch.Generator().manual_seed(5)
    for shape in [(37, 10), (6, 33), (3, 5, 7, 9), (2, 21, 4, 33)]:
        for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 2e-5)]:
            logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
            if len(shape) == 4:  # channels-last memory: a non-contiguous (N, C, H, W) view
                logits = logits.to(memory_format=torch.channels_last)
            target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
            target.view(-1)[::7] = -100
            weight = torch.rand(shape[1], generator=g, dtype=torch.float64).to(dtype) + 0.1
            loss = get_loss(name, **kwargs, weight=weight, reduction=reduction)
            _assert_kernels_agree(loss, logits, target, tol)


def test_fused_focal_at_gamma_zero_is_cross_entropy(fused_kernel) -> None:
    """An independent reference: FL with γ = 0 is F.cross_entropy, also for N-D input, weights,
    ignored items and every reduction."""
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(4, 6, 5, 3, generator=g, dtype=torch.float64) * 4
    target = torch.randint(0, 6, (4, 5, 3), generator=g)
    target[0, 0] = -100
    weight = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    for reduction in ("mean", "sum", "none"):
        x = logits.clone().requires_grad_(True)
        ours = get_loss("focal", gamma=0.0, weight=weight, reduction=reduction)(x, target)
        ours.sum().backward()
        y = logits.clone().requires_grad_(True)
        ref = F.cross_entropy(y, target, weight=weight, reduction=reduction)
        ref.sum().backward()
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-14)


def test_fused_half_precision_inputs_compute_in_float32(fused_kernel) -> None:
    logits = torch.randn(16, 9, generator=torch.Generator().manual_seed(1)) * 2
    target = torch.arange(16) % 9
    for name, kwargs in [("focal", {"gamma": 3.0}), ("dual_focal", {})]:
        expected = get_loss(name, **kwargs)(logits.bfloat16().float(), target)
        x = logits.bfloat16().requires_grad_(True)
        value = get_loss(name, **kwargs)(x, target)
        value.backward()
        assert value.dtype == torch.float32 and x.grad.dtype == torch.bfloat16  # as eager
        torch.testing.assert_close(value.float(), expected, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("name", ["focal", "dual_focal", "flsd53", "adafocal"])
def test_fused_saturated_logits_stay_finite(fused_kernel, name) -> None:
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]])
    x = logits.clone().requires_grad_(True)
    value = get_loss(name)(x, torch.tensor([1, 0, 2]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_fused_all_ignored_empty_and_no_grad(fused_kernel) -> None:
    logits = torch.randn(4, 5, requires_grad=True)
    value = get_loss("dual_focal")(logits, torch.full((4,), -100))
    value.backward()
    assert value.item() == 0.0 and torch.count_nonzero(logits.grad) == 0
    with pytest.raises(ValueError, match="non-empty batch"):  # as with the eager kernel
        get_loss("focal", validate=False)(torch.randn(0, 5), torch.zeros(0, dtype=torch.long))
    # the kernel itself returns empty statistics for an empty item grid
    stats = fused_kernel.stats(
        torch.randn(0, 5, 1), torch.zeros(0, 1, dtype=torch.long), torch.empty(0), -100, True, True
    )
    assert [tuple(s.shape) for s in stats[:5]] == [(0, 1)] * 5 and stats[5].item() == 0.0
    with torch.no_grad():  # the forward without the runner-up's index
        a = get_loss("dual_focal")(logits, torch.arange(4))
    torch.testing.assert_close(a, get_loss("dual_focal")(logits, torch.arange(4)))


def test_fused_retain_graph_backward_twice_gives_the_same_gradient(fused_kernel) -> None:
    logits = torch.randn(8, 6, requires_grad=True)
    value = get_loss("dual_focal")(logits, torch.arange(8) % 6)
    (first,) = torch.autograd.grad(value, logits, retain_graph=True)
    (second,) = torch.autograd.grad(value, logits)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_fused_results_do_not_depend_on_the_thread_count(fused_kernel) -> None:
    logits = torch.randn(3000, 50, generator=torch.Generator().manual_seed(2))
    target = torch.arange(3000) % 50
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results.append(_loss_and_grad(get_loss("dual_flsd53"), logits, target, "fused"))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fused_out_of_range_target_without_validation_raises(fused_kernel) -> None:
    """validate=False skips the Python checks; the kernel still never reads out of bounds."""
    logits = torch.randn(3, 4, requires_grad=True)
    for bad in (4, -1, -101):
        with pytest.raises(RuntimeError, match="target"):
            get_loss("focal", validate=False)(logits, torch.tensor([0, bad, 1]))


def test_set_cpu_kernel_rejects_unknown_names() -> None:
    before = get_cpu_kernel()
    with pytest.raises(ValueError, match=r"kind: expected one of 'eager', 'fused', got 'gpu'"):
        set_cpu_kernel("gpu")  # type: ignore[arg-type]
    assert get_cpu_kernel() == before


def test_a_kernel_that_does_not_build_raises_a_clear_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real failed compilation (a source with a syntax error) is a RuntimeError that names the
    way back, and the eager kernel stays selected."""
    require_fused_kernel()
    before = get_cpu_kernel()
    broken = tmp_path / "_fused_cpu.cpp"
    broken.write_text("this is not C++;\n")
    monkeypatch.setattr(fused_module, "_SOURCE", broken)
    monkeypatch.setattr(fused_module, "_module", None)
    with pytest.raises(RuntimeError, match=r"could not build the fused CPU kernel.*'eager'"):
        set_cpu_kernel("fused")
    assert get_cpu_kernel() == before


def test_other_devices_and_half_tensors_use_the_eager_kernel(fused_kernel) -> None:
    """Only float32/float64 CPU tensors go to the fused kernel (the loss functions upcast half
    precision first)."""
    assert fused_module.fused_kernel_for(torch.zeros(2, 3)) is fused_kernel
    assert fused_module.fused_kernel_for(torch.zeros(2, 3, dtype=torch.float16)) is None
    assert fused_module.fused_kernel_for(torch.zeros(2, 3, device="meta")) is None


def test_scheduled_gamma_follows_the_epoch_in_the_fused_kernel(fused_kernel) -> None:
    """The kernel reads a scheduled policy's γ at each call (γ = 5, then 1 from epoch 2)."""
    logits = torch.randn(10, 4, generator=torch.Generator().manual_seed(4))
    target = torch.arange(10) % 4
    policy = ScheduledGamma({0: 5.0, 2: 1.0})
    loss = get_loss("focal", gamma=policy)

    def fixed(gamma: float) -> torch.Tensor:
        return get_loss("focal", gamma=gamma)(logits, target)

    torch.testing.assert_close(loss(logits, target), fixed(5.0))
    policy.set_epoch(2)
    torch.testing.assert_close(loss(logits, target), fixed(1.0))
    assert not torch.allclose(fixed(5.0), fixed(1.0))  # the two epochs differ


@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_other_vector_widths_agree_too(capability: str) -> None:
    """The kernel built for AVX2 (8 float lanes) and for portable vectors, in a process whose
    ``ATEN_CPU_CAPABILITY`` selects them (the build flags follow PyTorch's capability), passes
    the brute-force, eager-parity and cross-entropy tests of this module (AVX-512 is the build
    of this process on an AVX-512 machine)."""
    require_fused_kernel()
    native = torch.backends.cpu.get_cpu_capability()
    if capability == "avx2" and native not in ("AVX2", "AVX512"):
        pytest.skip(f"the CPU has no AVX2 (capability {native})")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    selected = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert selected.stdout.strip() == capability.upper()
    tests = "runner_up or matches_eager or gamma_zero"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            __file__,
            "-k",
            tests,
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_kernel_is_built_with_openmp_where_torch_uses_it(fused_kernel) -> None:
    """at::parallel_for is inlined OpenMP: without -fopenmp the kernel would silently run on one
    thread. On Linux with an OpenMP torch the module must need libgomp (torch's, already loaded)."""
    if not (sys.platform.startswith("linux") and torch.backends.openmp.is_available()):
        pytest.skip("OpenMP builds are made on Linux with an OpenMP torch only")
    assert b"libgomp.so" in Path(fused_kernel.__file__).read_bytes()


def _table_gamma(table, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(γ ≥ 0, inverse) of a GammaTable, as the kernel reads it: the default, replaced by each
    step's γ whose threshold the reference is below (largest threshold first); signed γ < 0 means
    inverse focal."""
    gamma = torch.full_like(reference, table.default)
    for threshold, value in table.steps:
        gamma = torch.where(reference < threshold, torch.full_like(gamma, value), gamma)
    inverse = gamma < 0 if table.signed else torch.zeros_like(reference, dtype=torch.bool)
    return gamma.abs() if table.signed else gamma, inverse


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adafocal_gamma_table_bins_exactly_like_assign_bins(dtype: torch.dtype) -> None:
    """Every reference value, including the edges themselves and their float neighbours, gets
    the bin γ of the eager lookup, for signed (official) and unsigned bins, with equal edges."""
    from focalcal.losses import AdaDualFocalLoss, AdaFocalLoss

    edges = [0.0, 0.1, 0.3, 0.3, 0.55, 0.9, 1.0]
    official = AdaFocalLoss()
    official.set_bins(edges, [4.0, 2.0, 9.0, 0.2, -0.3, -1.5])
    dual = AdaDualFocalLoss()
    dual.set_bins(edges, [6.0, 4.0, 9.0, 2.5, 1.5, 0.7])
    at_edges = torch.tensor(edges, dtype=torch.float64).to(dtype)
    reference = torch.cat(
        [
            torch.rand(2000, generator=torch.Generator().manual_seed(0), dtype=dtype),
            at_edges,
            torch.nextafter(at_edges, torch.full_like(at_edges, 2.0)),
            torch.nextafter(at_edges, torch.full_like(at_edges, -1.0)),
            torch.tensor([0.6], dtype=dtype),  # rounds above 3/5 in float32
        ]
    ).clamp(0, 1)
    for loss in (official, dual):
        table = loss.gamma_table(dtype)
        gamma, inverse = _table_gamma(table, reference)
        expected_gamma, expected_inverse = loss._gamma(reference, None)
        torch.testing.assert_close(gamma, expected_gamma, rtol=0, atol=0)
        assert torch.equal(inverse, torch.as_tensor(expected_inverse).expand_as(inverse))
    # the cache follows in-place updates of the bins
    table = official.gamma_table(dtype)
    official.bin_gammas.mul_(0.5)
    assert official.gamma_table(dtype) != table


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fused_adafocal_with_inverse_bins_matches_eager(fused_kernel, reduction) -> None:
    from focalcal.losses import AdaDualFocalLoss, AdaFocalLoss

    official = AdaFocalLoss(reduction=reduction)
    official.set_bins([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], [3.0, 1.0, 0.2, -0.2, -1.5])
    dual = AdaDualFocalLoss(reduction=reduction)
    dual.set_bins([0.0, 0.25, 0.5, 1.0], [5.0, 2.0, 0.5])
    g = torch.Generator().manual_seed(9)
    for loss in (official, dual):
        for dtype, tol in [(torch.float64, 1e-10), (torch.float32, 2e-5)]:
            logits = (torch.randn(64, 7, generator=g, dtype=torch.float64) * 3).to(dtype)
            target = torch.randint(0, 7, (64,), generator=g)
            target[::9] = -100
            _assert_kernels_agree(loss, logits, target, tol)
