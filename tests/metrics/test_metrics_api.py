"""The public surface of metrics, calibration and plots: import hygiene in a fresh interpreter,
``__all__`` lists only documented user-facing names, and every docstring example runs."""

from __future__ import annotations

import doctest
import importlib
import inspect
import json
import subprocess
import sys

import pytest

from focalcal._registry import Registry

HEAVY = ("lightning", "pytorch_lightning", "torchmetrics", "matplotlib", "scipy")


def _heavy_modules_after_each(statements: list[str]) -> list[list[str]]:
    """The heavy packages loaded after each statement, run in order in one fresh interpreter."""
    steps = "".join(
        f"{statement}\nseen.append(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
        for statement in statements
    )
    code = f"import json, sys\nseen = []\n{steps}print(json.dumps(seen))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_hygiene_in_a_fresh_interpreter() -> None:
    binning, metrics, calibration, streaming = _heavy_modules_after_each(
        [
            "import focalcal.metrics.binning",  # the losses import it: torch only
            "import focalcal.metrics",
            "import focalcal.calibration",
            "from focalcal.metrics import CalibrationMetrics, ECE\nassert ECE().n_bins == 15",
        ]
    )
    assert binning == []
    assert metrics == []  # neither lightning nor matplotlib (nor torchmetrics, scipy)
    assert calibration == []
    assert "torchmetrics" in streaming  # the streaming classes load it on first use (PEP 562)


def test_streaming_names_are_listed_and_plumbing_is_not_reachable() -> None:
    from focalcal import metrics

    assert {"CalibrationMetrics", "ECE"} <= set(dir(metrics))
    assert metrics.CalibrationMetrics.__module__ == "focalcal.metrics.streaming"
    with pytest.raises(AttributeError, match="has no attribute 'prepare_inputs'"):
        metrics.prepare_inputs  # noqa: B018
    import focalcal.metrics.functional as functional

    plumbing = {"prepare_inputs", "row_chunks", "top_label_update", "binned_calibration_error"}
    assert not plumbing & set(functional.__all__)


PACKAGES = {
    "focalcal.metrics": {
        *("ECE", "MCE", "NLL", "RMSCE", "Accuracy", "AdaECE", "Brier", "CalibrationMetrics"),
        *("ClasswiseECE", "SmoothECE", "BootstrapResult", "PairedBootstrapResult"),
        *("CalibrationBins", "accuracy", "adaece", "bootstrap_ci", "brier", "calibration_bins"),
        *("classwise_ece", "ece", "error", "mce", "nll", "ood", "paired_bootstrap", "rmsce"),
        *("smooth_ece", "binning", "coverage", "bootstrap_interval"),
        *("binary_ece", "multilabel_ece", "BinaryECE", "MultilabelECE"),
    },
    "focalcal.calibration": {
        *("CALIBRATORS", "Calibrator", "LogitCalibrator", "ProbabilityCalibrator"),
        *("HistogramBinning", "IsotonicCalibration", "MatrixScaling", "VectorScaling"),
        *("NotFittedError", "TemperatureScaling", "get_calibrator", "official_temperature_grid"),
    },
    "focalcal.plots": {"reliability_diagram", "save_reliability_diagram"},
}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_all_lists_exactly_the_user_facing_names(package: str) -> None:
    assert set(importlib.import_module(package).__all__) == PACKAGES[package]


MODULES = [
    "focalcal.metrics",
    "focalcal.metrics.binning",
    "focalcal.metrics.bootstrap",
    "focalcal.metrics.coverage",
    "focalcal.metrics.functional",
    "focalcal.metrics.multilabel",
    "focalcal.metrics.ood",
    "focalcal.metrics.smooth",
    "focalcal.metrics.streaming",
    "focalcal.calibration",
    "focalcal.calibration.affine",
    "focalcal.calibration.nonparametric",
    "focalcal.calibration.temperature",
    "focalcal.plots",
    "focalcal.plots.reliability",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_has_a_docstring_with_an_example(name: str) -> None:
    module = importlib.import_module(name)
    for export in module.__all__:
        obj = getattr(module, export)
        assert not export.startswith("_"), export
        if isinstance(obj, Registry):  # a registry instance: the registry module has the example
            obj = inspect.getmodule(Registry)
        doc = inspect.getdoc(obj) or ""
        assert ">>>" in doc, f"{name}.{export} has no example in its docstring"


@pytest.mark.parametrize(
    "name",
    [*MODULES, "focalcal.metrics._core", "focalcal.calibration._base", "focalcal._validation"],
)
def test_docstring_examples_run(name: str) -> None:
    pytest.importorskip("matplotlib") if "plots" in name else None
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags)
    assert result.failed == 0
