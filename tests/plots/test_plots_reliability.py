"""Reliability diagrams: rendered with Agg, checked against the metrics, written atomically."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from focalcal import metrics  # noqa: E402
from focalcal.plots import reliability_diagram, save_reliability_diagram  # noqa: E402


def _model(n: int = 3000, c: int = 10, sharpness: float = 2.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 0.3), n)
    labels = np.array([rng.choice(c, p=row) for row in p])
    logits = sharpness * np.log(np.clip(p, 1e-12, None))
    return logits, labels


def _rendered(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_bars_are_the_per_bin_accuracies_and_the_legend_has_the_ece():
    logits, labels = _model()
    ax = reliability_diagram(logits, labels, n_bins=10, from_logits=True, label="net")
    bins = metrics.calibration_bins(logits, labels, n_bins=10, from_logits=True)
    # direct loop: accuracy of the top label in each (lo, hi] bin
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    conf, pred = probs.max(1), probs.argmax(1)
    expected = []
    for b in range(10):
        inside = (conf > b / 10) & (conf <= (b + 1) / 10)
        if inside.any():
            expected.append((pred[inside] == labels[inside]).mean())
    accuracy_bars = ax.containers[0]  # first BarContainer: the accuracy bars
    heights = [bar.get_height() for bar in accuracy_bars]
    np.testing.assert_allclose(heights, expected, rtol=1e-12)
    np.testing.assert_allclose(heights, bins.accuracy.numpy()[bins.count.numpy() > 0])
    value = float(metrics.ece(logits, labels, n_bins=10, from_logits=True))
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"net (ECE {100 * value:.2f}%)" in texts
    assert "perfect calibration" in texts and "gap to mean confidence" in texts
    gap_bars = ax.containers[1]
    tops = [bar.get_y() + bar.get_height() for bar in gap_bars]
    np.testing.assert_allclose(tops, bins.confidence.numpy()[bins.count.numpy() > 0])


def test_renders_a_non_trivial_png_with_several_models(tmp_path):
    logits, labels = _model()
    path = save_reliability_diagram(
        tmp_path / "diagram.png",
        {"raw": logits, "T = 2.5": logits / 2.5},
        labels,
        from_logits=True,
        title="two models",
    )
    assert path == tmp_path / "diagram.png"
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    image = np.asarray(Image.open(path).convert("RGB")).astype(float)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image.std() > 20  # not a blank canvas
    colours = {tuple(px) for px in image.reshape(-1, 3)[::7].astype(int)}
    assert len(colours) > 50
    for bar_colour in ([31, 119, 180], [255, 127, 14]):  # C0 and C1 at alpha 0.85 on white
        blended = 0.85 * np.array(bar_colour) + 0.15 * 255
        assert (np.abs(image - blended).sum(-1) < 40).mean() > 0.002
    assert [p.name for p in tmp_path.iterdir()] == ["diagram.png"]  # no temp files left


def test_svg_output_and_overlay_on_a_user_axes(tmp_path):
    logits, labels = _model(n=800)
    out = save_reliability_diagram(tmp_path / "d.svg", torch.from_numpy(logits).softmax(1), labels)
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    fig = Figure(figsize=(8, 4))
    ax1, ax2 = fig.subplots(1, 2)
    assert reliability_diagram(logits, labels, from_logits=True, ax=ax1) is ax1
    reliability_diagram(logits, labels, from_logits=True, ax=ax2, show_histogram=False)
    assert len(fig.axes) == 3  # two diagrams + one appended histogram panel
    assert _rendered(fig).std() > 10


def test_overlay_draws_one_bar_set_per_model():
    logits, labels = _model(n=1500)
    models = {"a": logits, "b": logits / 2, "c": logits / 4}
    ax = reliability_diagram(models, labels, from_logits=True, show_gap=False, n_bins=8)
    assert len(ax.containers) == 3
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for name, z in models.items():
        value = float(metrics.ece(z, labels, n_bins=8, from_logits=True))
        assert f"{name} (ECE {100 * value:.2f}%)" in texts


def test_atomic_write_keeps_the_old_file_when_drawing_fails(tmp_path):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    logits, labels = _model(n=100)
    with pytest.raises(ValueError, match="labels"):
        save_reliability_diagram(target, logits, labels[:50], from_logits=True)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p, y, d: save_reliability_diagram(d / "x.jpeg", p, y), ValueError, r"\.png"),
        (lambda p, y, d: save_reliability_diagram(d / "no" / "x.png", p, y), ValueError, "folder"),
        (lambda p, y, d: reliability_diagram(np.log(p), y), ValueError, "from_logits=True"),
        (lambda p, y, d: reliability_diagram({}, y), ValueError, "empty"),
        (lambda p, y, d: reliability_diagram({1: p}, y), TypeError, "model names"),
        (lambda p, y, d: reliability_diagram(p, y, n_bins=0), ValueError, "n_bins"),
        (
            lambda p, y, d: reliability_diagram({"a": p, "b": p}, y, colors=["r"]),
            ValueError,
            "colors",
        ),
        (lambda p, y, d: reliability_diagram(p, y + 10), ValueError, "labels"),
        (lambda p, y, d: reliability_diagram(p, y, show_gap="no"), TypeError, "show_gap: exp"),
        (lambda p, y, d: reliability_diagram(p, y, show_histogram=1), TypeError, "show_histog"),
        (lambda p, y, d: reliability_diagram(p, y, from_logits="no"), TypeError, "from_logits"),
    ],
)
def test_bad_input_raises(tmp_path, call, error, match):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), 50)
    with pytest.raises(error, match=match):
        call(probs, probs.argmax(1), tmp_path)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import focalcal.plots.reliability as module

    def missing(name: str, extra: str):
        raise ImportError(f'install it with: pip install "focalcal[{extra}]"')

    monkeypatch.setattr(module, "require", missing)
    with pytest.raises(ImportError, match=r"focalcal\[plot\]"):
        module.reliability_diagram(np.eye(3), np.arange(3))


def test_atomic_write_when_saving_fails_midway(tmp_path, monkeypatch):
    target = tmp_path / "keep.svg"
    target.write_text("old")

    def broken_savefig(self, handle, **kwargs):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    logits, labels = _model(n=100)
    with pytest.raises(OSError, match="disk full"):
        save_reliability_diagram(target, logits, labels, from_logits=True)
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["keep.svg"]
