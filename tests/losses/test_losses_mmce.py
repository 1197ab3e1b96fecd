"""MMCE: the O(N log N) Laplacian-kernel sums against the dense N×N form, the penalties against
their formulas written out densely, segmentation-sized batches."""

from __future__ import annotations

import torch

from focalcal.losses import mmce_loss
from focalcal.losses.mmce import laplacian_kernel_matvec, mmce_penalty


def _dense_kernel(r: torch.Tensor, width: float = 0.4) -> torch.Tensor:
    return torch.exp(-(r[:, None] - r[None, :]).abs() / width)


def test_kernel_matvec_matches_dense_values_and_gradients_with_ties() -> None:
    g = torch.Generator().manual_seed(0)
    r = torch.rand(40, generator=g, dtype=torch.float64)
    r[5] = r[6] = r[7]  # exact ties (K = 1, |·|' = 0 in the dense form)
    r = r.requires_grad_(True)
    v = torch.randn(40, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    fast = laplacian_kernel_matvec(r, v, 0.4)
    r2 = r.detach().clone().requires_grad_(True)
    v2 = v.detach().clone().requires_grad_(True)
    dense = _dense_kernel(r2) @ v2
    torch.testing.assert_close(fast, dense, rtol=1e-12, atol=1e-12)
    w = torch.randn(40, 2, generator=g, dtype=torch.float64)
    (fast * w).sum().backward()
    (dense * w).sum().backward()
    torch.testing.assert_close(r.grad, r2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v.grad, v2.grad, rtol=1e-10, atol=1e-12)


def _dense_penalties(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.softmax(logits, 1)
    r, pred = p.max(1)
    c = (pred == target).double()
    k = _dense_kernel(r)
    n = r.numel()
    unweighted = ((c - r)[:, None] * (c - r)[None, :] * k).sum() / n**2
    m, nw = c.sum(), (1 - c).sum()
    u, v = c * (1 - r), (1 - c) * r
    mmd = (
        (u @ k @ u) / (m**2 + 1e-5)
        + (v @ k @ v) / (nw**2 + 1e-5)
        - 2 * (u @ k @ v) / (m * nw + 1e-5)
    )
    return unweighted, torch.sqrt(mmd + 1e-10)


def test_penalties_match_dense_formulas_and_gradients() -> None:
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(30, 5, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    target = torch.randint(0, 5, (30,), generator=g)
    valid = torch.ones(30, dtype=torch.bool)
    log_p = torch.log_softmax(logits, 1)
    ours_m = mmce_penalty(log_p, target, valid)
    ours_w = mmce_penalty(log_p, target, valid, weighted=True)
    ref_m, ref_w = _dense_penalties(logits, target)
    torch.testing.assert_close(ours_m, ref_m, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(ours_w, ref_w, rtol=1e-10, atol=1e-14)
    for ours, ref in ((ours_m, ref_m), (ours_w, ref_w)):
        (g1,) = torch.autograd.grad(ours, logits, retain_graph=True)
        (g2,) = torch.autograd.grad(ref, logits, retain_graph=True)
        torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-12)


def test_official_convention_divides_the_pair_means_again() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(20, 4, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 4, (20,), generator=g)
    target[:8] = logits[:8].argmax(1)
    log_p = torch.log_softmax(logits, 1)
    valid = torch.ones(20, dtype=torch.bool)
    official = mmce_penalty(log_p, target, valid, weighted=True, convention="official")
    p = log_p.exp()
    r, pred = p.max(1)
    c = (pred == target).double()
    k = _dense_kernel(r)
    m, n = c.sum(), (1 - c).sum()
    u, v = c * (1 - r), (1 - c) * r
    mmd = (u @ k @ u) / m**2 / (m**2 + 1e-5) + (v @ k @ v) / n**2 / (n**2 + 1e-5)
    mmd = mmd - 2 * (u @ k @ v) / (m * n) / (m * n + 1e-5)
    torch.testing.assert_close(official, torch.sqrt(mmd + 1e-10))


def test_single_sample_and_one_sided_batches_give_zero_weighted_penalty() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    for target in (0, 1):
        t = torch.tensor([target])
        value = mmce_loss(logits, t, lam=2.0, weighted=True)
        torch.testing.assert_close(value, torch.nn.functional.cross_entropy(logits, t))
    # unweighted with N = 1 is (c − r)²: 0.1120636177 for [2, 1, 0], target 0 (official)
    pen = mmce_penalty(torch.log_softmax(logits, 1), torch.tensor([0]), torch.tensor([True]))
    torch.testing.assert_close(pen.item(), 0.1120636177, rtol=1e-8, atol=0)


def test_segmentation_sized_batch_runs_in_linear_memory() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 128, 128, generator=g, requires_grad=True)  # 32768 pixels
    target = torch.randint(0, 5, (2, 128, 128), generator=g)
    value = mmce_loss(logits, target, weighted=True)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
