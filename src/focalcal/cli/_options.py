"""Option declarations shared by the subcommands, generated from :class:`TrainConfig`.

Every ``TrainConfig`` field becomes one option: its name (``--batch-size``), type, choices and
help come from the field's annotation and ``metadata`` (see :mod:`focalcal.training.config`).
Options that were not given are absent from the parsed namespace (``default=SUPPRESS``), so
:func:`given_fields` returns exactly what the user typed, and a config file or a preset supplies
the rest.

This module imports no torch: ``focalcal --help`` builds its parser from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..training.config import TrainConfig, parse_key_value

_GROUP_TITLES = {
    "what": "what to train",
    "recipe": "recipe (defaults come from --preset or --config; every value can be overridden)",
    "hardware": "hardware (Lightning)",
}
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as an argparse type (its error becomes argparse's one-line usage error)."""
    try:
        return parse_key_value(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def devices(text: str) -> int | str:
    """``--devices``: a count (``4``, ``-1``) or Lightning's ``auto`` / ``0,1``."""
    return int(text) if text.lstrip("-").isdigit() else text


def _value_options(hint: Any, metadata: Any) -> dict[str, Any]:
    """The ``add_argument`` keywords that parse one value of a field annotated ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is dict:
        return {"action": "append", "type": key_value}
    if origin is list:
        # a list of epochs may be empty (no LR decay); a list of names may not
        return {"type": args[0], "nargs": "*" if args[0] is int else "+"}
    kinds = [a for a in args if a is not type(None)] or [hint]
    if set(kinds) == {int, str}:
        return {"type": devices}
    return {"type": kinds[0], "choices": metadata.get("choices")}


def flag_of(name: str) -> str:
    """The option of the field ``name`` (``batch_size`` → ``--batch-size``)."""
    return _FIELDS[name].metadata.get("flag", "--" + name.replace("_", "-"))


def add_field_option(parser: Any, name: str, help: str | None = None) -> None:
    """Add the option of the ``TrainConfig`` field ``name`` to ``parser`` (or an argument group)."""
    spec = _FIELDS[name]
    meta = spec.metadata
    text = argparse.SUPPRESS if meta.get("hidden") else help or meta["help"]
    options = {k: v for k, v in _value_options(_HINTS[name], meta).items() if v is not None}
    if "metavar" in meta:
        options["metavar"] = meta["metavar"]
    parser.add_argument(flag_of(name), dest=name, default=argparse.SUPPRESS, help=text, **options)
    if "off" in meta:  # an optional value that is on by default gets a flag turning it off
        parser.add_argument(
            "--no-" + flag_of(name)[2:],
            dest=name,
            action="store_const",
            const=None,
            default=argparse.SUPPRESS,
            help=meta["off"],
        )


def fields_of(group: str) -> list[str]:
    """The ``TrainConfig`` fields declared in ``group`` (``what``, ``recipe``, ``hardware``)."""
    return [name for name, spec in _FIELDS.items() if spec.metadata["group"] == group]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per ``TrainConfig`` field, in the declaration's groups and order."""
    for group, title in _GROUP_TITLES.items():
        section = parser.add_argument_group(title)
        for name in fields_of(group):
            add_field_option(section, name)


def add_hardware_options(parser: argparse.ArgumentParser, title: str) -> None:
    """The hardware options (``--accelerator``, ``--devices``, …), declared once on
    ``TrainConfig``, for the commands that run many trainings (``reproduce``, ``tune-gamma``)."""
    section = parser.add_argument_group(title)
    add_field_option(section, "epochs", help="override every run's epochs")
    for name in fields_of("hardware"):
        add_field_option(section, name)


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The ``TrainConfig`` values given on the command line (``KEY=VALUE`` lists as dicts)."""
    given = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
    return {k: dict(v) if _is_dict(k) and v is not None else v for k, v in given.items()}


def _is_dict(name: str) -> bool:
    return typing.get_origin(_HINTS[name]) is dict


def add_evaluation_options(parser: argparse.ArgumentParser, n_bootstrap: int = 1000) -> None:
    """Temperature-scaling criterion and bootstrap options of every command that evaluates."""
    parser.add_argument(
        "--ts-criterion",
        choices=("ece", "nll"),
        default="ece",
        help="temperature fitted on the validation split by the papers' grid search "
        "on ECE (default) or by minimising the NLL",
    )
    parser.add_argument(
        "--n-bootstrap",
        type=int,
        default=n_bootstrap,
        help=f"bootstrap resamples for the 95%% intervals (default {n_bootstrap}; 0: none)",
    )
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap")


def evaluation_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of ``evaluate_run`` / ``compare_runs`` that :func:`add_evaluation_options`
    declares."""
    return {
        "ts_criterion": args.ts_criterion,
        "n_bootstrap": args.n_bootstrap,
        "seed": args.bootstrap_seed,
    }
