"""
Temperature scaling an over-confident model
===========================================

A model is *over-confident* when its confidence (the largest probability) exceeds its accuracy.
Its reliability diagram has bars below the diagonal. Temperature scaling divides every logit by
one number :math:`T > 0`, fitted on held-out data; :math:`T > 1` softens the probabilities
without changing any prediction, so accuracy is unchanged and the calibration error drops.

Here the "model" is synthetic: its logits are three times too large for the evidence that
generated the labels, the textbook case of over-confidence.
"""

import matplotlib.pyplot as plt
import numpy as np

from focalcal import metrics
from focalcal.calibration import TemperatureScaling
from focalcal.plots import reliability_diagram

rng = np.random.default_rng(0)
logits = 3 * rng.standard_normal((6000, 10)).astype(np.float32)
labels = (logits / 3 + rng.standard_normal((6000, 10))).argmax(1)
val_logits, val_labels = logits[:5000], labels[:5000]
test_logits, test_labels = logits[5000:], labels[5000:]

# %%
# Fit the temperature on the validation split (exact NLL minimiser), then apply it to the test
# split. Accuracy does not change; ECE does.

ts = TemperatureScaling().fit(val_logits, val_labels)
calibrated = ts.predict_proba(test_logits)
ece_before = float(metrics.ece(test_logits, test_labels, from_logits=True))
ece_after = float(metrics.ece(calibrated, test_labels))
acc_before = float(metrics.accuracy(test_logits, test_labels, from_logits=True))
acc_after = float(metrics.accuracy(calibrated, test_labels))
print(f"fitted T = {ts.temperature_:.3f}")
print(f"accuracy {acc_before:.3f} -> {acc_after:.3f}")
print(f"ECE      {ece_before:.3f} -> {ece_after:.3f}")

# %%
# The reliability diagrams, before and after: each bar is a confidence bin's accuracy, the
# hatched part the gap to the bin's mean confidence, and the panel underneath the share of
# samples per bin.

fig, axes = plt.subplots(
    2, 2, figsize=(10, 6.5), height_ratios=[3, 1], sharex=True, layout="constrained"
)
reliability_diagram(
    test_logits,
    test_labels,
    ax=axes[0, 0],
    hist_ax=axes[1, 0],
    from_logits=True,
    label="raw logits",
    title="before: over-confident",
)
reliability_diagram(
    calibrated,
    test_labels,
    ax=axes[0, 1],
    hist_ax=axes[1, 1],
    label=f"T = {ts.temperature_:.2f}",
    title="after temperature scaling",
)
plt.show()
