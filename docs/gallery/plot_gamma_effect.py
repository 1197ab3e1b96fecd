r"""
How γ shapes the focal loss and its gradient
============================================

The focal loss :math:`-(1 - p_y)^\gamma \log p_y` multiplies cross-entropy (:math:`\gamma = 0`)
by a factor that vanishes as the target's probability :math:`p_y` approaches 1. Confidently
correct samples stop pulling the logits further apart, which is what keeps the network from
becoming over-confident. FLSD-53 picks γ per sample: 5 when :math:`p_y < 0.2`, 3 otherwise.

The curves below are computed by :func:`focalcal.losses.focal_loss` itself, on two-class logits
:math:`(\log p_y, \log(1 - p_y))` whose softmax is exactly :math:`(p_y, 1 - p_y)`; the gradient
with respect to the target's logit comes from autograd.
"""

import matplotlib.pyplot as plt
import torch

from focalcal.losses import focal_loss

p = torch.linspace(0.01, 0.99, 197, dtype=torch.float64)
target = torch.zeros(len(p), dtype=torch.long)


def loss_and_gradient(gamma):
    """Per-sample loss and its gradient with respect to the target's logit."""
    logits = torch.stack([p.log(), (1 - p).log()], dim=1).requires_grad_(True)
    loss = focal_loss(logits, target, gamma=gamma, reduction="none")
    loss.sum().backward()
    return loss.detach(), logits.grad[:, 0]


# %%
# Larger γ lowers the loss of well-classified samples (:math:`p_y > 0.5`) by orders of
# magnitude, and the gradient of a sample with :math:`p_y` near 1 goes to zero much sooner than
# cross-entropy's :math:`p_y - 1`. FLSD-53 follows γ = 5 below :math:`p_y = 0.2` and γ = 3 above,
# so its gradient jumps where γ switches.

fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for gamma in [0.0, 1.0, 2.0, 3.0, 5.0, "flsd53"]:
    loss, grad = loss_and_gradient(gamma)
    name = "FLSD-53" if gamma == "flsd53" else f"γ = {gamma:g}" + (" (CE)" if gamma == 0 else "")
    style = {"ls": "--", "color": "k"} if gamma == "flsd53" else {}
    ax_loss.plot(p, loss, label=name, **style)
    ax_grad.plot(p, grad, label=name, **style)
ax_loss.set(xlabel="$p_y$", ylabel="loss", yscale="log", title="loss")
ax_grad.set(xlabel="$p_y$", ylabel=r"$\partial \ell / \partial z_y$", title="gradient")
ax_loss.legend()
for ax in (ax_loss, ax_grad):
    ax.grid(True, ls=":", alpha=0.6)
plt.show()

# %%
# At :math:`p_y = 0.9` the gradient is this fraction of cross-entropy's:

_, ce_grad = loss_and_gradient(0.0)
i = int(torch.argmin((p - 0.9).abs()))
for gamma in [1.0, 2.0, 3.0, 5.0]:
    _, grad = loss_and_gradient(gamma)
    print(f"γ = {gamma:g}: {float(grad[i] / ce_grad[i]):.3f}")
