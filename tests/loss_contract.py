"""The loss names issue 2 (§6) requires of ``get_loss``, shared by the test modules
(importable because ``tests`` is on pytest's ``pythonpath``)."""

CONTRACT_LOSSES: tuple[str, ...] = (
    "ce", "focal", "flsd53", "flsd52", "dual_focal", "dual_flsd53", "adafocal", "ada_dual_focal",
    "brier", "mmce", "mmce_weighted", "label_smoothing", "inverse_focal",
)  # fmt: skip
