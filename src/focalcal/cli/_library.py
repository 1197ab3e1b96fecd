"""The library functions the commands call beyond ``focalcal.training.__all__``, found in one
place: ``focalcal.training`` when it exports them, else the module that defines them today.

Every import here happens inside a function: the parser must build without torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

_HOME = "focalcal.training.reproduce"
_HOMES = ("focalcal.training", _HOME, "focalcal.training.evaluate")


def library(name: str) -> Callable[..., Any]:
    """The function (or class) ``name`` from the first of :data:`_HOMES` that defines it.

    A submodule of the same name (``focalcal.training.reproduce``) is not the function.
    """
    for home in _HOMES:
        value = getattr(importlib.import_module(home), name, None)
        if callable(value) and not isinstance(value, ModuleType):
            return value
    raise AttributeError(f"focalcal.training has no {name!r}")


def suite_name(name: str) -> str:
    """The canonical name of the suite ``name`` (unknown names raise, listing the valid ones)."""
    from focalcal.training.suites import get_suite

    return get_suite(name).name


def suite_names() -> list[str]:
    """The registered suite names."""
    from focalcal.training.suites import SUITES

    return SUITES.names()


def launch_options(out: Path, timeout_min: int, executor_options: dict[str, Any]) -> Any:
    """How :func:`tune_gamma` submits its jobs (``reproduce`` takes the same as keywords)."""
    return library("LaunchOptions")(out / "submitit", timeout_min, tuple(executor_options.items()))


def describe_plan(suite: str, out_dir: Path, **options: Any) -> list[str]:
    """One line per run of the plan of ``suite``, with its state; trains nothing.

    Uses the library's ``describe_plan`` when it has one; until then the same listing is built
    here from the suite's plan.
    """
    try:
        describe = library("describe_plan")
    except AttributeError:
        return _plan_lines(suite, out_dir, **options)
    return describe(suite, out_dir, **options)


def _plan_lines(
    suite: str,
    out_dir: Path,
    *,
    seeds: int | None = None,
    datasets: list[str] | None = None,
    losses: list[str] | None = None,
    data_dir: str | None = None,
    tune: bool | None = None,
    **overrides: Any,
) -> list[str]:
    home = importlib.import_module(_HOME)
    plan = home.get_suite(suite).select(datasets=datasets, losses=losses)
    gammas = {key: rec["gamma"] for key, rec in home._saved_tuning(plan, out_dir).items()}
    specs = plan.plan(out_dir, seeds=seeds, data_dir=data_dir, gammas=gammas, **overrides)
    lines = []
    for spec in specs:
        gamma = spec.config["gamma"]
        suffix = f" (γ={gamma:g})" if gamma is not None else ""
        lines.append(f"{home.run_state(spec):9s} {spec.name}{suffix}")
    first = plan.datasets[0].key
    tuned = [x.key for x in plan.losses if x.tune_gamma and (first, x.key) not in gammas]
    if tuned and (plan.tune_gamma if tune is None else tune):
        lines.append(f"(γ of {tuned} is chosen by the γ search first: {list(plan.gamma_grid)})")
    return lines
