"""Default conventions against independent references: direct per-bin loops written here,
torchmetrics (away from its bin-edge behaviour), scikit-learn, numpy and relplot."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

from focalcal import metrics
from focalcal.metrics import ood
from focalcal.metrics.binning import assign_bins, classwise_bin_sums, equal_width_edges
from focalcal.metrics.smooth import _smooth_ece_at as smooth_ece_at
from focalcal.metrics.smooth import _smooth_ece_from_pairs as smooth_ece_from_pairs


def _random_case(
    n: int, c: int, seed: int, scale: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * scale
    labels = torch.randint(0, c, (n,), generator=g)
    return logits.softmax(1), labels


def _loop_binned(conf: list[float], hit: list[float], n_bins: int) -> tuple[list, list, list]:
    """Bins (k/B, (k+1)/B] with exact rational comparisons; 0 goes to the first bin."""
    members: list[list[int]] = [[] for _ in range(n_bins)]
    for i, v in enumerate(conf):
        exact = Fraction(v)
        b = 0
        while b < n_bins - 1 and exact > Fraction(b + 1, n_bins):
            b += 1
        members[b].append(i)
    counts = [len(m) for m in members]
    mean_conf = [sum(conf[i] for i in m) / len(m) if m else 0.0 for m in members]
    mean_acc = [sum(hit[i] for i in m) / len(m) if m else 0.0 for m in members]
    return counts, mean_conf, mean_acc


def _loop_ece_family(
    conf: list[float], hit: list[float], n_bins: int
) -> tuple[float, float, float]:
    counts, mc, ma = _loop_binned(conf, hit, n_bins)
    n = len(conf)
    ece = sum(k / n * abs(a - c) for k, a, c in zip(counts, ma, mc, strict=True))
    mce = max(abs(a - c) for a, c in zip(ma, mc, strict=True))
    rms = math.sqrt(sum(k / n * (a - c) ** 2 for k, a, c in zip(counts, ma, mc, strict=True)))
    return ece, mce, rms


@pytest.mark.parametrize(
    ("n", "c", "n_bins", "seed"), [(1, 3, 15, 0), (97, 10, 15, 1), (300, 4, 7, 2), (64, 2, 1, 3)]
)
def test_top_label_metrics_match_direct_loop(n: int, c: int, n_bins: int, seed: int) -> None:
    probs, labels = _random_case(n, c, seed)
    conf, pred = probs.max(1)
    hit = (pred == labels).double().tolist()
    ece, mce, rms = _loop_ece_family(conf.double().tolist(), hit, n_bins)
    assert float(metrics.ece(probs, labels, n_bins=n_bins)) == pytest.approx(ece, abs=1e-12)
    assert float(metrics.mce(probs, labels, n_bins=n_bins)) == pytest.approx(mce, abs=1e-12)
    assert float(metrics.rmsce(probs, labels, n_bins=n_bins)) == pytest.approx(rms, abs=1e-12)


def test_values_on_bin_edges_follow_lo_exclusive_hi_inclusive() -> None:
    # confidences exactly representable in float64 and on edges k/4: 0.5 -> bin 1, 0.75 -> bin 2
    probs = torch.tensor([[0.5, 0.5], [0.75, 0.25], [1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    bins = metrics.calibration_bins(probs, labels, n_bins=4)
    assert bins.count.tolist() == [0.0, 1.0, 2.0, 1.0]
    # float32 0.6 is 0.6000000238 > 3/5: the default puts it above the edge 3/5, exactly
    p32 = torch.tensor([[0.6, 0.4]])
    assert metrics.calibration_bins(p32, torch.tensor([0]), n_bins=5).count.tolist() == [
        0,
        0,
        0,
        1,
        0,
    ]
    official = metrics.calibration_bins(p32, torch.tensor([0]), n_bins=5, convention="official")
    assert official.count.tolist() == [0, 0, 1, 0, 0]  # float32 linspace edge equals the value


def test_classwise_ece_matches_direct_loop_over_all_columns() -> None:
    probs, labels = _random_case(200, 6, seed=4)
    labels[labels == 5] = 0  # class 5 never a label: default still averages over 6 columns
    total = 0.0
    for k in range(6):
        col = probs[:, k].double().tolist()
        event = (labels == k).double().tolist()
        counts, mc, ma = _loop_binned(col, event, 15)
        total += sum(cnt / 200 * abs(a - c) for cnt, a, c in zip(counts, ma, mc, strict=True))
    assert float(metrics.classwise_ece(probs, labels)) == pytest.approx(total / 6, abs=1e-7)
    per_class_official = float(metrics.classwise_ece(probs, labels, convention="official"))
    assert per_class_official != pytest.approx(total / 6, abs=1e-9)


@pytest.mark.parametrize("exclude_lowest", [False, True])
def test_classwise_bin_sums_equal_dense_binning(exclude_lowest: bool) -> None:
    probs, labels = _random_case(150, 9, seed=5, scale=4.0)
    probs[0, 3] = 0.0
    edges = equal_width_edges(10, dtype=torch.float64)
    got = classwise_bin_sums(probs, labels, edges, exact=True, exclude_lowest=exclude_lowest)
    idx = assign_bins(probs, edges, exact=True)
    onehot = tnf.one_hot(labels, 9)
    keep = (probs > 0) if exclude_lowest else torch.ones_like(probs, dtype=torch.bool)
    for k in range(9):
        for b in range(10):
            member = (idx[:, k] == b) & keep[:, k]
            assert float(got.count[k, b]) == int(member.sum())
            # bin 0 = float32 column total - other bins: accurate relative to the column total
            column_total = float(probs[:, k].double().sum())
            assert float(got.conf_sum[k, b]) == pytest.approx(
                float(probs[member, k].double().sum()), abs=1e-6 * column_total
            )
            assert float(got.acc_sum[k, b]) == int(onehot[member, k].sum())


def test_ece_matches_torchmetrics_away_from_bin_edges() -> None:
    tm = pytest.importorskip("torchmetrics.functional.classification")
    probs, labels = _random_case(3000, 10, seed=6)
    conf = probs.max(1).values
    edges = torch.arange(1, 15, dtype=torch.float64) / 15
    near_edge = ((conf.double().unsqueeze(1) - edges).abs() < 1e-6).any(1) | (conf == 1)
    probs, labels = probs[~near_edge], labels[~near_edge]
    expected = tm.multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15, norm="l1")
    assert float(metrics.ece(probs, labels)) == pytest.approx(float(expected), abs=1e-6)
    expected_max = tm.multiclass_calibration_error(
        probs, labels, num_classes=10, n_bins=15, norm="max"
    )
    assert float(metrics.mce(probs, labels)) == pytest.approx(float(expected_max), abs=1e-6)


def test_adaece_default_uses_numpy_interp_edges_and_bins_every_sample() -> None:
    probs, labels = _random_case(101, 5, seed=7)
    conf, pred = probs.max(1)
    c = conf.double().numpy()
    edges = np.interp(np.linspace(0, 101, 16), np.arange(101), np.sort(c))
    hit = (pred == labels).double().numpy()
    expected = 0.0
    for b in range(15):
        lo, hi = edges[b], edges[b + 1]
        member = (c > lo) & (c <= hi) if b > 0 else (c <= hi)
        if member.any():
            expected += member.sum() / 101 * abs(hit[member].mean() - c[member].mean())
    assert float(metrics.adaece(probs, labels)) == pytest.approx(expected, abs=1e-12)


def test_nll_brier_accuracy_against_torch_and_sklearn() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    logits = (
        torch.randn(400, 7, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 3
    )
    labels = torch.randint(0, 7, (400,), generator=torch.Generator().manual_seed(9))
    probs = logits.softmax(1)
    assert float(metrics.nll(logits, labels, from_logits=True)) == pytest.approx(
        float(tnf.cross_entropy(logits, labels)), rel=1e-12
    )
    assert float(metrics.nll(probs, labels)) == pytest.approx(
        sk.log_loss(labels, probs.numpy(), labels=range(7)), rel=1e-9
    )
    onehot = tnf.one_hot(labels, 7).double()
    assert float(metrics.brier(probs, labels)) == pytest.approx(
        float(((probs - onehot) ** 2).sum(1).mean()), rel=1e-12
    )
    assert float(metrics.accuracy(probs, labels)) == pytest.approx(
        sk.accuracy_score(labels, probs.argmax(1))
    )
    assert float(metrics.error(probs, labels)) == pytest.approx(
        1 - sk.accuracy_score(labels, probs.argmax(1))
    )
    # binary Brier = 2 x scikit-learn's brier_score_loss on the positive class
    p2 = torch.tensor([[0.2, 0.8], [0.7, 0.3], [0.5, 0.5]], dtype=torch.float64)
    y2 = torch.tensor([1, 1, 0])
    assert float(metrics.brier(p2, y2)) == pytest.approx(2 * sk.brier_score_loss(y2, p2[:, 1]))


def test_nll_from_logits_does_not_underflow() -> None:
    logits = torch.tensor([[0.0, 200.0]])
    assert float(metrics.nll(logits, torch.tensor([0]), from_logits=True)) == pytest.approx(200.0)


def test_ood_metrics_match_sklearn_with_ties() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(10)
    s_in = np.round(rng.normal(size=300), 1)
    s_out = np.round(rng.normal(0.7, size=200), 1)
    y = np.r_[np.zeros(300), np.ones(200)]
    s = np.r_[s_in, s_out]
    assert float(ood.ood_auroc(s_in, s_out)) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert float(ood.ood_aupr(s_in, s_out)) == pytest.approx(
        sk.average_precision_score(y, s), abs=1e-12
    )
    fpr, tpr, _ = sk.roc_curve(y, s)
    assert float(ood.fpr_at_95_tpr(s_in, s_out)) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])
    assert float(ood.ood_auroc(-s_in, -s_out, ood_higher=False)) == pytest.approx(
        sk.roc_auc_score(y, s)
    )


def test_ood_scores_closed_forms() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    p = logits.softmax(1)
    assert torch.allclose(ood.entropy_score(logits), -(p * p.log()).sum(1))
    assert float(ood.entropy_score(logits)[1]) == pytest.approx(math.log(3))
    assert torch.allclose(
        ood.energy_score(logits, temperature=2.0), -2 * torch.logsumexp(logits / 2, 1)
    )
    assert ood.max_logit_score(logits).tolist() == [2.0, 0.0]
    assert torch.allclose(ood.max_softmax_score(logits), p.max(1).values)


def test_smooth_ece_matches_relplot() -> None:
    relplot = pytest.importorskip("relplot")
    rng = np.random.default_rng(11)
    for n in (1, 7, 500, 5000):
        f = rng.uniform(0, 1, n)
        y = (rng.uniform(0, 1, n) < f**1.7).astype(float)
        expected, width = relplot.smECE(f, y, return_width=True)
        got, sigma = smooth_ece_from_pairs(
            torch.from_numpy(f), torch.from_numpy(y), return_bandwidth=True
        )
        assert sigma == width
        assert float(got) == pytest.approx(float(expected), abs=1e-8)
    assert float(smooth_ece_at(torch.from_numpy(f), torch.from_numpy(y), 0.05)) == pytest.approx(
        float(relplot.smECE_sigma(f, y, 0.05)), abs=1e-8
    )


def test_smooth_ece_is_bandwidth_fixed_point_and_small_when_calibrated() -> None:
    g = torch.Generator().manual_seed(12)
    f = torch.rand(20000, generator=g, dtype=torch.float64)
    y = (torch.rand(20000, generator=g, dtype=torch.float64) < f).double()
    value, sigma = smooth_ece_from_pairs(f, y, return_bandwidth=True)
    assert float(value) < 0.02
    # sigma is the fixed point found by 10 bisection steps: smECE(sigma) <= sigma < smECE(sigma - 2^-10)
    assert float(value) <= sigma
    assert sigma - 2**-10 < float(smooth_ece_at(f, y, sigma - 2**-10)) or sigma - 2**-10 < 1e-3
    miscalibrated = (torch.rand(20000, generator=g, dtype=torch.float64) < f**3).double()
    assert float(smooth_ece_from_pairs(f, miscalibrated)) > 0.1


def test_bin_sums_weight_shapes() -> None:
    from focalcal.metrics.binning import bin_sums

    index = torch.tensor([[0, 1], [1, 1], [0, 0]])
    conf = torch.tensor([[0.2, 0.6], [0.7, 0.9], [0.1, 0.3]])
    hit = torch.tensor([[1, 0], [1, 1], [0, 0]])
    per_item = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
    got = bin_sums(index, conf, hit, 2, weight=per_item)  # (K, B) with elementwise weights
    assert got.count.tolist() == [[1.0, 2.0], [1.0, 1.0]]
    assert got.conf_sum[1].tolist() == pytest.approx([0.3, 0.9])
    per_row = bin_sums(index, conf, hit, 2, weight=torch.tensor([1.0, 0.0, 2.0]))
    assert per_row.count.tolist() == [[3.0, 0.0], [2.0, 1.0]]
    resampled = bin_sums(
        index[:, 0], conf[:, 0], hit[:, 0], 2, weight=torch.tensor([[1.0, 1, 1], [0, 3, 0]])
    )
    assert resampled.count.tolist() == [[2.0, 1.0], [0.0, 3.0]]
