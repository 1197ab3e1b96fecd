"""
CE vs FLSD-53 vs Dual Focal Loss on 20 Newsgroups
=================================================

The packaged data: 20 Newsgroups documents as 384-d MiniLM sentence embeddings (11,314 train,
7,532 test; shipped with focalcal, no download). A 2×256 MLP is trained with each loss for a
few epochs of Adam, the same schedule, seed and batches for all three, then its test-set
calibration is measured and drawn.

This is a fast illustration, not the papers' protocol: ``focalcal demo`` and the
:doc:`reproduction guide <../guide/reproducing>` train with the papers' recipe and report
intervals.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from focalcal import metrics
from focalcal.losses import get_loss
from focalcal.models import mlp
from focalcal.plots import reliability_diagram
from focalcal.training.demo import DEMO_DATA

torch.set_num_threads(1)  # a 2×256 MLP is too small to gain from more threads
data = np.load(DEMO_DATA)
x_train = torch.from_numpy(data["x_train"].astype(np.float32))
y_train = torch.from_numpy(data["y_train"])
x_test = torch.from_numpy(data["x_test"].astype(np.float32))
y_test = torch.from_numpy(data["y_test"])
print(
    f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, {len(data['class_names'])} classes"
)

# %%
# One training function for every loss: only the criterion differs.

EPOCHS = 10


def train(criterion):
    torch.manual_seed(0)
    model = mlp(384, 20, hidden=256, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(x_train), generator=order).split(128):
            optimizer.zero_grad()
            criterion(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        return model.eval()(x_test)


losses = {
    "cross-entropy": get_loss("ce"),
    "FLSD-53": get_loss("flsd53"),
    "dual focal (γ = 5)": get_loss("dual_focal", gamma=5.0),
}
test_logits = {}
for name, criterion in losses.items():
    start = time.process_time()
    test_logits[name] = train(criterion)
    print(f"{name:20s} trained in {time.process_time() - start:.1f} s of CPU")

# %%
# Error, NLL and ECE on the test set (in %): after ten epochs cross-entropy is over-confident,
# and both focal-type losses cut its ECE several-fold at about the same error.

print(f"{'loss':20s} {'error':>6s} {'NLL':>6s} {'ECE':>6s} {'AdaECE':>7s}")
for name, z in test_logits.items():
    err = 100 * float(metrics.error(z, y_test, from_logits=True))
    nll = float(metrics.nll(z, y_test, from_logits=True))
    ece = 100 * float(metrics.ece(z, y_test, from_logits=True))
    ada = 100 * float(metrics.adaece(z, y_test, from_logits=True))
    print(f"{name:20s} {err:6.2f} {nll:6.3f} {ece:6.2f} {ada:7.2f}")

# %%
# The reliability diagrams: cross-entropy's bars fall below the diagonal (over-confident).

fig, axes = plt.subplots(
    2, 3, figsize=(14, 6.5), height_ratios=[3, 1], sharex=True, layout="constrained"
)
for column, (name, z) in enumerate(test_logits.items()):
    reliability_diagram(
        z,
        y_test,
        ax=axes[0, column],
        hist_ax=axes[1, column],
        from_logits=True,
        label=name,
        title=name,
    )
plt.show()
