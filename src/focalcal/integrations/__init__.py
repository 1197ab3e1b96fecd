"""Adapters for the stacks people train with; each one is an optional extra, imported lazily.

Importing :mod:`focalcal.integrations` imports none of them. Import a submodule to use it; without
its extra it raises ImportError naming the extra to install:

- :mod:`focalcal.integrations.transformers`: the Hugging Face ``Trainer`` / TRL loss
  (``compute_loss_func``), ``compute_metrics`` and a temperature-scaling callback
  (``pip install "focalcal[transformers]"``);
- :mod:`focalcal.integrations.lightning`: calibration-metrics and temperature-scaling callbacks
  for any ``LightningModule`` (``pip install "focalcal[lightning]"``);
- :mod:`focalcal.integrations.timm`: timm ``train.py``'s loss choice (Mixup / CutMix soft
  targets, ``--smoothing``) with focalcal losses (``pip install "focalcal[timm]"``).

Example:
    >>> import focalcal.integrations  # imports no optional library
"""

from __future__ import annotations

__all__: list[str] = []
