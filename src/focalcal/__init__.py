"""focalcal: calibration-aware losses, calibration metrics and post-hoc calibrators for PyTorch.

Implements Mukhoti et al., *Calibrating Deep Neural Networks using Focal Loss* (NeurIPS 2020) and
Tao, Dong & Xu, *Dual Focal Loss for Calibration* (ICML 2023).
"""

__version__ = "0.1.0"
