"""The fused linear + calibration loss against the materialised path (logits, then focalcal's
own loss): values and gradients of hidden, weight and bias, every loss and reduction; gradcheck;
memory (no (N, V) allocation); errors."""

from __future__ import annotations

import doctest
import gc

import pytest
import torch
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

from focalcal.losses import LinearCalibrationLoss, get_loss, linear_calibration_loss
from focalcal.losses.linear import LINEAR_LOSSES, dft_loss

N, H, V = 23, 6, 17
IGNORE = -100

#: (loss name, options): every supported loss, γ policies included
CASES = [
    ("ce", {}),
    ("focal", {"gamma": 2.0}),
    ("flsd53", {}),
    ("flsd52", {}),
    ("flsc531", {}),
    ("dual_focal", {"gamma": 5.0}),
    ("dual_flsd53", {}),
    ("inverse_focal", {"gamma": 2.0}),
    ("label_smoothing", {"eps": 0.1}),
    ("brier", {}),
    ("dft", {}),
]


def _dft_reference(logits: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """−sg(p_y) log p_y written out with log_softmax (independent of ``dft_loss``)."""
    valid = target != IGNORE
    log_p = torch.log_softmax(logits, dim=1)
    log_p_y = log_p.gather(1, (target * valid).unsqueeze(1)).squeeze(1)
    items = torch.where(valid, -(log_p_y.detach().exp() * log_p_y), 0.0)
    if reduction == "none":
        return items
    return items.sum() if reduction == "sum" else items.sum() / valid.sum()


def _materialised(name, options, hidden, weight, bias, target, reduction, softcap=None):
    logits = hidden.reshape(-1, hidden.shape[-1]) @ weight.T
    if bias is not None:
        logits = logits + bias
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    flat = target.reshape(-1)
    if name == "dft":
        value = _dft_reference(logits, flat, reduction)
    else:
        value = get_loss(name, reduction=reduction, **options)(logits, flat)
    return value.view(target.shape) if reduction == "none" else value


def _inputs(dtype: torch.dtype, seed: int = 0):
    """Hidden states and a head with ties: rows 3 and 5 of the head are equal (tied logits for
    every token, targets on both), row 7 = row 3 + a tiny shift, and two ignored tokens."""
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, H, generator=g, dtype=torch.float64).to(dtype)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64)
    weight[5] = weight[3]
    weight[7] = weight[3] * 1.001
    bias = torch.randn(V, generator=g, dtype=torch.float64)
    bias[5] = bias[3]
    target = torch.randint(0, V, (N,), generator=g)
    target[[0, 4, 9]] = torch.tensor([3, 5, 7])
    target[[2, 11]] = IGNORE
    return hidden, weight.to(dtype), bias.to(dtype), target


def _close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Relative agreement, scaled by the largest entry (gradients have entries near 0)."""
    scale = expected.detach().abs().max().clamp_min(1e-30)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * float(scale))


def _check_parity(name, options, dtype, reduction, chunk_size, *, bias=True, softcap=None):
    hidden, weight, b, target = _inputs(dtype)
    b = b if bias else None
    leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((b,) if bias else ())]
    ref_leaves = [t.clone().requires_grad_() for t in leaves]
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    ref = _materialised(name, options, *ref_leaves[:2], *(ref_leaves[2:] or [None]), target,
                        reduction, softcap)  # fmt: skip
    got = linear_calibration_loss(
        *leaves[:2], target, *(leaves[2:] or [None]), loss=name, reduction=reduction,
        chunk_size=chunk_size, softcap=softcap, **options,
    )  # fmt: skip
    _close(got, ref.detach(), rtol)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    expected = torch.autograd.grad(ref, ref_leaves, grad_out)
    actual = torch.autograd.grad(got, leaves, grad_out)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype
        _close(a, e, rtol)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("name", "options"), CASES, ids=[c[0] for c in CASES])
def test_parity_with_materialised_logits(name, options, dtype, reduction):
    # 5 does not divide 23: the last chunk has 3 tokens
    _check_parity(name, options, dtype, reduction, chunk_size=5)


@pytest.mark.parametrize("chunk_size", [1, 7, 22, 23, 1000])
def test_chunk_sizes_and_softcap(chunk_size):
    _check_parity("dual_focal", {"gamma": 3.0}, torch.float64, "mean", chunk_size, softcap=2.0)
    _check_parity("flsd53", {}, torch.float64, "none", chunk_size, bias=False, softcap=2.0)


def test_fused_cpu_kernel_inside_the_chunks(cpu_kernel):
    _check_parity("dual_focal", {}, torch.float32, "mean", chunk_size=4)
    _check_parity("dual_flsd53", {}, torch.float64, "none", chunk_size=4)


def test_runner_up_tie_is_excluded_like_the_materialised_loss():
    """Tokens whose target (3) ties with class 5 take p_j below both, in every chunk layout."""
    hidden, weight, bias, target = _inputs(torch.float64)
    items = linear_calibration_loss(hidden, weight, target, bias, reduction="none", chunk_size=1)
    focal = get_loss("focal", gamma=5.0, reduction="none")
    dual = get_loss("dual_focal", gamma=5.0, reduction="none")
    logits = hidden @ weight.T + bias
    assert torch.equal(logits[:, 3], logits[:, 5])  # the tie is real
    # dual focal's base 1 − p_y + p_j exceeds focal's 1 − p_y: p_j > 0 was found below the tie
    assert bool((items[0] > focal(logits, target)[0]).all())
    torch.testing.assert_close(items, dual(logits, target), rtol=1e-12, atol=0)


def test_num_items_in_batch_divides_the_sum():
    hidden, weight, bias, target = _inputs(torch.float64)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    got = linear_calibration_loss(*leaves[:2], target, leaves[2], num_items_in_batch=40)
    summed = linear_calibration_loss(hidden, weight, target, bias, reduction="sum")
    ref_leaves = [t.clone().requires_grad_() for t in leaves]
    ref = _materialised("dual_focal", {}, *ref_leaves[:2], ref_leaves[2], target, "sum") / 40
    _close(got, ref.detach(), 1e-12)
    _close(got, summed / 40, 1e-12)
    expected = torch.autograd.grad(ref, ref_leaves)
    for a, e in zip(torch.autograd.grad(got, leaves), expected, strict=True):
        _close(a, e, 1e-10)
    as_tensor = linear_calibration_loss(
        hidden, weight, target, bias, num_items_in_batch=torch.tensor(40)
    )
    _close(as_tensor, got.detach(), 1e-15)


def test_batch_time_layout_and_per_token_shape():
    hidden, weight, bias, target = _inputs(torch.float64)
    hidden3, target3 = hidden[:22].view(2, 11, H), target[:22].view(2, 11)
    items = linear_calibration_loss(hidden3, weight, target3, bias, reduction="none")
    assert items.shape == (2, 11)
    ref = _materialised("dual_focal", {}, hidden3, weight, bias, target3, "none")
    _close(items, ref, 1e-12)
    assert float(items[target3 == IGNORE].abs().max()) == 0.0


def test_all_tokens_ignored_gives_zero_mean_and_zero_gradient():
    hidden = torch.randn(4, 3, requires_grad=True)
    weight = torch.randn(5, 3, requires_grad=True)
    loss = linear_calibration_loss(hidden, weight, torch.full((4,), IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().max() == 0 and weight.grad.abs().max() == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_matches_fp32_on_the_same_inputs(dtype):
    hidden, weight, bias, target = _inputs(torch.float32)
    lp = [t.to(dtype).requires_grad_() for t in (hidden, weight, bias)]
    got = linear_calibration_loss(*lp[:2], target, lp[2], chunk_size=4)
    ref_leaves = [t.detach().float().requires_grad_() for t in lp]
    ref = _materialised("dual_focal", {}, *ref_leaves[:2], ref_leaves[2], target, "mean")
    assert got.dtype == torch.float32  # the loss value is accumulated in fp32
    _close(got, ref.detach(), 2e-2)
    grads = torch.autograd.grad(got, lp)
    for a, e, leaf in zip(grads, torch.autograd.grad(ref, ref_leaves), lp, strict=True):
        assert a.dtype == leaf.dtype
        _close(a.float(), e, 5e-2)


@pytest.mark.parametrize(
    ("name", "reduction"), [("dual_focal", "mean"), ("flsd53", "none"), ("label_smoothing", "sum")]
)
def test_gradcheck_float64(name, reduction):
    # (DFT is left out: its weight sg(p_y) is detached by definition, so its gradient is not
    # the derivative of its value)
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(9, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, IGNORE, 8, 1, 1, 5])

    def fn(h, w, b):
        return linear_calibration_loss(
            h, w, target, b, loss=name, reduction=reduction, chunk_size=3, softcap=4.0
        )

    assert torch.autograd.gradcheck(fn, (hidden, weight, bias))


def test_dft_loss_matches_its_definition():
    logits = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 4, IGNORE, 2, 2, 1])
    for reduction in ("mean", "sum", "none"):
        got = dft_loss(logits, target, reduction=reduction)
        torch.testing.assert_close(got, _dft_reference(logits, target, reduction))
    # the gradient is p_y's weight times cross-entropy's: the weight is detached
    p_y = torch.softmax(logits, 1)[0, 0].detach()
    (grad,) = torch.autograd.grad(dft_loss(logits[:1], target[:1], reduction="sum"), logits)
    ce_grad = torch.softmax(logits[0], 0).detach() - torch.eye(5, dtype=torch.float64)[0]
    torch.testing.assert_close(grad[0], p_y * ce_grad)


def test_module_matches_functional_and_schedules_gamma():
    hidden, weight, bias, target = _inputs(torch.float64)
    criterion = LinearCalibrationLoss("flsc531", chunk_size=4)
    at_start = criterion(hidden, weight, target, bias)
    criterion.set_epoch(120)  # FLSc-531: γ = 3 from epoch 100
    later = criterion(hidden, weight, target, bias)
    logits = hidden @ weight.T + bias
    _close(at_start, get_loss("focal", gamma=5.0)(logits, target), 1e-12)
    _close(later, get_loss("focal", gamma=3.0)(logits, target), 1e-12)
    hf = criterion(hidden, weight, target, bias, num_items_in_batch=7)
    _close(hf, get_loss("focal", gamma=3.0, reduction="sum")(logits, target) / 7, 1e-12)


def _allocations(fn) -> tuple[int, int]:
    """(largest single CPU allocation, peak of the allocated total above what was allocated when
    ``fn`` started) in bytes during ``fn()``; tensors that earlier tests left alive in the
    process are part of the total and are subtracted."""
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation:
            events.append(event)
    events.sort(key=lambda e: e.start_time_ns)
    first = events[0].extra_fields
    baseline = first.total_allocated - first.alloc_size
    largest = max(e.extra_fields.alloc_size for e in events)
    peak = max(e.extra_fields.total_allocated for e in events) - baseline
    return largest, peak


@pytest.mark.parametrize(("name", "reduction"), [("dual_focal", "mean"), ("flsd53", "none")])
def test_no_allocation_of_n_by_v_elements(name, reduction):
    tokens, width, vocab, chunk = 4096, 8, 512, 32
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=g, requires_grad=True)
    weight = torch.randn(vocab, width, generator=g, requires_grad=True)
    target = torch.randint(0, vocab, (tokens,), generator=g)
    n_by_v = tokens * vocab * 4  # bytes of one (N, V) fp32 tensor: 8 MiB; a chunk's is 64 KiB

    def fused():
        value = linear_calibration_loss(
            hidden, weight, target, loss=name, reduction=reduction, chunk_size=chunk
        )
        value.sum().backward()

    def materialised():
        value = get_loss(name, reduction=reduction)(hidden @ weight.T, target)
        value.sum().backward()

    largest, peak = _allocations(fused)
    assert largest < n_by_v / 16, largest
    # the peak holds grad_hidden (N, H) and grad_W (V, H) and a few chunks, not (N, V)
    assert peak < n_by_v / 4, peak
    # the probe sees the materialised path's (N, V) tensors
    assert _allocations(materialised)[0] >= n_by_v


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden": torch.randn(4)}, ValueError, r"hidden: expected shape \(N, H\)"),
        ({"weight": torch.randn(5, 4)}, ValueError, r"weight: expected shape \(V, 3\)"),
        ({"target": torch.zeros(5, dtype=torch.long)}, ValueError, r"target: expected shape \(4,\)"),
        ({"target": torch.tensor([0, 1, 2, 5])}, ValueError, r"target: .*\[0, 5\).*got values \[5\]"),
        ({"target": torch.tensor([0, 1, 2, -1])}, ValueError, r"target: .*got values \[-1\]"),
        ({"target": torch.zeros(4)}, TypeError, "target: expected integer"),
        ({"weight": torch.randn(5, 3, dtype=torch.float64)}, TypeError, "weight: expected the dtype"),
        ({"bias": torch.randn(4)}, ValueError, r"bias: expected shape \(5,\)"),
        ({"hidden": torch.zeros(4, 3, dtype=torch.long)}, TypeError, "hidden: expected a float16"),
        ({"chunk_size": 0}, ValueError, "chunk_size: expected an integer >= 1"),
        ({"chunk_size": 2.5}, TypeError, "chunk_size: expected an integer"),
        ({"num_items_in_batch": 0}, ValueError, "num_items_in_batch: expected a finite number > 0"),
        ({"num_items_in_batch": torch.tensor(0)}, ValueError, "num_items_in_batch: expected a count > 0"),
        ({"num_items_in_batch": 3, "reduction": "sum"}, ValueError, "needs reduction=\"mean\""),
        ({"softcap": -1.0}, ValueError, "softcap: expected a finite number > 0"),
        ({"reduction": "avg"}, ValueError, "reduction: expected one of"),
        ({"loss": "mmce"}, ValueError, "loss: expected a per-token loss"),
        ({"loss": "nope"}, ValueError, r"loss: expected one of \['ce'.*got 'nope'"),
        ({"loss": "ce", "gamma": 2.0}, TypeError, "gamma"),
        ({"weight": None}, TypeError, "weight: expected a torch.Tensor"),
    ],
)  # fmt: skip
def test_bad_input_raises_a_clear_error(kwargs, error, match):
    args = {
        "hidden": torch.randn(4, 3),
        "weight": torch.randn(5, 3),
        "target": torch.tensor([0, 1, 2, IGNORE]),
    }
    options = {k: v for k, v in kwargs.items() if k not in args}
    args.update({k: v for k, v in kwargs.items() if k in args})
    with pytest.raises(error, match=match):
        linear_calibration_loss(args["hidden"], args["weight"], args["target"], **options)


def test_every_listed_loss_is_tested():
    # FLSc-532 differs from the tested FLSc-531 only in its schedule's numbers
    assert set(LINEAR_LOSSES) - {name for name, _ in CASES} == {"flsc532"}


def test_second_backward_recomputes_the_same_gradient():
    hidden, weight, bias, target = _inputs(torch.float64)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    loss = linear_calibration_loss(*leaves[:2], target, leaves[2], chunk_size=6)
    first = torch.autograd.grad(loss, leaves, retain_graph=True)  # the forward's gradients
    second = torch.autograd.grad(loss, leaves, torch.tensor(3.0, dtype=torch.float64))
    for a, b in zip(first, second, strict=True):
        _close(b, 3 * a, 1e-12)


def test_docstring_examples_run():
    import focalcal.losses.linear as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
