"""The loss names ``get_loss`` must accept, shared by the test modules
(importable because ``tests`` is on pytest's ``pythonpath``), and inputs several modules use."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

CONTRACT_LOSSES: tuple[str, ...] = (
    "ce", "focal", "flsd53", "flsd52", "dual_focal", "dual_flsd53", "adafocal", "ada_dual_focal",
    "brier", "mmce", "mmce_weighted", "label_smoothing", "inverse_focal",
)  # fmt: skip


def adversarial_runner_up_rows(
    dtype: torch.dtype, width: int = 12, seed: int = 11
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, width), target (N)) that stress a search for the runner-up p_j: classes one
    ulp away from the target's logit (both sides), ties and one-ulp gaps among the others, p_y near
    1 (where ulps are tiny), saturated and huge finite logits, the target smallest, all tied.
    Rows have 2 to 11 real classes; the rest of each row is −1e4 (p = 0)."""
    g = torch.Generator().manual_seed(seed)
    rows, targets = [], []
    for scale in (0.5, 3.0, 30.0, 1e4, 1e30):
        for _ in range(40):
            c = int(torch.randint(2, 12, (1,), generator=g))
            z = (torch.randn(c, generator=g, dtype=torch.float64) * scale).to(dtype)
            y = int(torch.randint(0, c, (1,), generator=g))
            k = int(torch.randint(0, c, (1,), generator=g))
            kind = int(torch.randint(0, 4, (1,), generator=g))
            if k != y and kind == 0:  # one ulp below / above the target's logit
                z[k] = torch.nextafter(z[y], z.new_tensor(-torch.inf))
            elif k != y and kind == 1:
                z[k] = torch.nextafter(z[y], z.new_tensor(torch.inf))
            elif kind == 2:  # ties among the others
                z[(y + 1) % c] = z[(y + 2) % c]
            elif c > 3:  # a lower-index class one ulp below a higher-index one
                lo, hi = sorted(((y + 1) % c, (y + 2) % c))
                z[lo] = torch.nextafter(z[hi], z.new_tensor(-torch.inf))
            rows.append(torch.nn.functional.pad(z, (0, width - c), value=-torch.inf))
            targets.append(y)
    # p_y close to 1 (log p_y in (-0.3, 0]) with candidates just below, target smallest, all tied
    pad = [-torch.inf] * (width - 4)
    rows += [
        torch.tensor([20.0, 0.0, 0.0, -1.0, *pad], dtype=dtype),
        torch.tensor([1.2, 0.0, -0.5, -0.5, *pad], dtype=dtype),
        torch.tensor([-3.0, 1.0, 2.0, 1.0, *pad], dtype=dtype),
        torch.tensor([0.7] * width, dtype=dtype),
    ]
    targets += [0, 0, 0, 5]
    logits = torch.stack(rows)
    logits = torch.where(torch.isinf(logits), torch.full_like(logits, -1e4), logits)
    return logits, torch.tensor(targets)


def require_fused_kernel() -> None:
    """Skip when no C++ compiler is installed (the fused CPU kernel is built on first use); with
    one, a failed build is an error, not a skip."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler!r}) to build the fused CPU kernel")
