"""The study file: a suite of runs declared in TOML, read and checked before anything runs.

A study names its datasets (``[[datasets]]``: a registry dataset with its roots and options, a
model with options, OOD sets, recipe overrides), its losses (``[[losses]]``: a registry loss with
options, γ fixed or tuned on ``gamma_grid``, or any numeric option tuned on its own grid with
``tune = { option = "margin", grid = [5.0, 10.0, 15.0] }``), seeds and bootstrap settings. The built-in suites
are such files, shipped in ``focalcal/training/studies/``. :func:`read_study` returns the
checked tables; :func:`focalcal.training.suites.load_study` turns them into a
:class:`~focalcal.training.suites.Suite`.

Every error names the file, the table and the key: an unknown key, an unknown dataset, model or
loss name, a wrong type, loss options the loss does not accept, a negative γ, a ``tune`` table
that is incomplete, clashes with ``tune_gamma`` or a fixed option, or holds a value the loss
refuses, and TOML syntax errors (with their line and column). Relative paths are relative to the study file.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "study.toml"
    >>> _ = path.write_text('''
    ... name = "mine"
    ... [[datasets]]
    ... key = "news"
    ... dataset = "npz"
    ... model = "mlp"
    ... root = "news.npz"
    ... [[losses]]
    ... key = "ce"
    ... ''')
    >>> study = read_study(path)
    >>> study["datasets"][0]["roots"] == [str(path.parent / "news.npz")]
    True
    >>> _ = path.write_text('name = "mine"\\nseeds = "two"\\n')
    >>> read_study(path)
    Traceback (most recent call last):
    ...
    ValueError: ...study.toml: top-level table: seeds: expected an integer, got 'two'
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["RECIPE_FIELDS", "read_study", "read_toml"]

_STR, _INT, _NUM, _BOOL, _TABLE = "a string", "an integer", "a number", "true or false", "a table"
_STRS, _NUMS = "a list of strings", "a list of numbers"

#: Keys of each table and the type each must have.
TOP_KEYS = {
    "name": _STR, "aliases": _STRS, "description": _STR, "seeds": _INT, "gamma_grid": _NUMS,
    "tune_epochs": _INT, "n_bootstrap": _INT, "tune_gamma": _BOOL, "ts_criterion": _STR,
    "recipe": _TABLE, "datasets": "a list of [[datasets]] tables",
    "losses": "a loss set name, or a list of loss set names and [[losses]] tables",
}  # fmt: skip
DATASET_KEYS = {
    "key": _STR, "title": _STR, "dataset": _STR, "model": _STR, "root": _STR, "roots": _STRS,
    "preset": _STR, "dataset_options": _TABLE, "model_options": _TABLE, "ood": _STRS,
    "ood_options": _TABLE, "overrides": _TABLE, "train_size": _INT, "prepare": _STR,
}  # fmt: skip
LOSS_KEYS = {
    "key": _STR, "label": _STR, "loss": _STR, "gamma": _NUM, "tune_gamma": _BOOL,
    "tune": _TABLE, "options": _TABLE,
}  # fmt: skip
#: Keys of a loss's ``tune`` table: the tuned option and its candidates.
TUNE_KEYS = {"option": _STR, "grid": _NUMS}
#: Config fields a study sets through its own keys, not through ``recipe`` / ``overrides``.
_OWN_FIELDS = {"dataset", "model", "loss", "preset", "gamma", "seed", "data_root", "ood"}
_OWN_FIELDS |= {"loss_options", "model_options", "dataset_options", "ood_options"}
#: The config fields a study's ``recipe`` and a dataset's ``overrides`` may set.
RECIPE_FIELDS = frozenset({f.name for f in dataclasses.fields(TrainConfig)} - _OWN_FIELDS)
_LOSS_SETS = {"paper": "paper-losses.toml", "recent": "recent-losses.toml"}
STUDIES_DIR = Path(__file__).resolve().parent / "studies"


def read_toml(path: str | Path) -> dict[str, Any]:
    """The TOML document at ``path``; syntax errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study: no file at {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: invalid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err})") from None


def _type_ok(value: Any, expected: str) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    checks = {
        _STR: lambda v: isinstance(v, str),
        _INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
        _NUM: number,
        _BOOL: lambda v: isinstance(v, bool),
        _TABLE: lambda v: isinstance(v, dict),
        _STRS: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        _NUMS: lambda v: isinstance(v, list) and all(number(x) for x in v),
    }
    return checks[expected](value) if expected in checks else True


def _check_table(where: str, table: Any, keys: dict[str, str], required: tuple = ()) -> None:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table, got {table!r}")
    for key, value in table.items():
        if key not in keys:
            raise ValueError(f"{where}: unknown key {key!r}; expected one of {sorted(keys)}")
        if not _type_ok(value, keys[key]):
            raise ValueError(f"{where}: {key}: expected {keys[key]}, got {value!r}")
    missing = [k for k in required if k not in table]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(map(repr, missing))}")


def _registered(where: str, key: str, name: str, kind: str) -> str:
    from ..data import DATASETS
    from ..losses import LOSSES as loss_registry
    from ..models import MODELS
    from .config import PRESETS

    registry = {"dataset": DATASETS, "model": MODELS, "loss": loss_registry, "preset": PRESETS}
    try:
        return registry[kind].canonical(name)
    except ValueError as err:
        raise ValueError(f"{where}: {key}: {err}") from None


def _path(base: Path, text: str) -> str:
    """``text`` relative to the study's folder unless absolute or a ``{placeholder}`` path."""
    if text.startswith("{") or Path(text).is_absolute():
        return text
    return str(base / text)


def _recipe(where: str, recipe: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(recipe) - RECIPE_FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: unknown recipe keys {unknown}; expected some of {sorted(RECIPE_FIELDS)}"
        )
    return dict(recipe)


def _dataset(where: str, table: dict[str, Any], base: Path, recipe: dict) -> dict[str, Any]:
    _check_table(where, table, DATASET_KEYS, required=("key", "dataset", "model"))
    if "root" in table and "roots" in table:
        raise ValueError(f"{where}: root and roots: expected at most one of them, got both")
    out = dict(table)
    _registered(where, "dataset", table["dataset"], "dataset")
    _registered(where, "model", table["model"], "model")
    _registered(where, "preset", table.get("preset", "cpu"), "preset")
    roots = [table["root"]] if "root" in table else table.get("roots", [])
    out["roots"] = [_path(base, r) for r in roots]
    out.pop("root", None)
    ood = []
    for spec in table.get("ood", []):
        name, sep, root = spec.partition(":")
        _registered(where, "ood", name, "dataset")
        ood.append(f"{name}:{_path(base, root)}" if sep else name)
    out["ood"] = ood
    overrides = {**recipe, **_recipe(where + ": overrides", table.get("overrides", {}))}
    if "train_size" in table:
        overrides["train_size"] = out.pop("train_size")
    out["overrides"] = overrides
    return out


def _loss(where: str, table: dict[str, Any]) -> dict[str, Any]:
    from ..losses import get_loss

    _check_table(where, table, LOSS_KEYS, required=("key",))
    out = {"loss": table["key"], **table}
    _registered(where, "loss", out["loss"], "loss")
    if "gamma" in table and table.get("tune_gamma"):
        raise ValueError(f"{where}: gamma and tune_gamma: a tuned loss has no fixed gamma")
    if "tune" in table and "tune_gamma" in table:
        raise ValueError(f"{where}: tune and tune_gamma: expected at most one of them, got both")
    options = dict(table.get("options", {}))
    if "gamma" in table or table.get("tune_gamma"):
        options["gamma"] = float(table.get("gamma", 1.0))
    _check_gamma(where, "gamma", [options.get("gamma", 0.0)])
    try:
        get_loss(out["loss"], **options)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: options: the loss {out['loss']!r} refused them: {err}"
        ) from None
    if "tune" in table:
        _tune(where, table, out["loss"], options)
    return out


def _tune(where: str, table: dict[str, Any], loss: str, options: dict[str, Any]) -> None:
    """Check ``table["tune"]``: one numeric option of ``loss``, a grid of values it accepts."""
    from ..losses import get_loss

    here = f"{where}: tune"
    tune = table["tune"]
    _check_table(here, tune, TUNE_KEYS, required=("option", "grid"))
    option, grid = tune["option"], tune["grid"]
    if option in options:  # ``options`` holds the table's ``gamma`` too
        setter = "gamma" if option == "gamma" and "gamma" in table else "options"
        raise ValueError(f"{here}: option: {option!r} is tuned, so {setter} cannot also fix it")
    if option == "gamma":
        check_gamma_grid(grid, f"{here}: grid")
    if not grid:
        raise ValueError(f"{here}: grid: expected at least one value, got none")
    for value in grid:
        if not math.isfinite(value):
            raise ValueError(f"{here}: grid: expected finite numbers, got {value}")
        try:
            get_loss(loss, **{**options, option: float(value)})
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{here}: grid: the loss {loss!r} refused {option}={value:g}: {err}"
            ) from None


def _check_gamma(where: str, key: str, values: list[float]) -> None:
    for g in values:
        if not math.isfinite(g) or g < 0:
            raise ValueError(f"{where}: {key}: expected finite γ >= 0, got {g:g}")


def check_gamma_grid(grid: Any, name: str = "grid") -> tuple[float, ...]:
    """``grid`` as a tuple of floats: a non-empty list of finite γ > 0 (a grid searches the
    strength of a focal-type term; γ = 0 would be plain cross-entropy, not a candidate).

    Example:
        >>> check_gamma_grid([1, 3.0])
        (1.0, 3.0)
    """
    if isinstance(grid, (str, bytes)) or not hasattr(grid, "__iter__"):
        raise ValueError(f"{name}: expected a list of γ values, got {grid!r}")
    values = []
    for g in grid:
        if isinstance(g, bool) or not isinstance(g, (int, float)):
            raise ValueError(f"{name}: expected numbers, got {g!r}")
        if not math.isfinite(g) or g <= 0:
            raise ValueError(f"{name}: expected finite γ > 0, got {g:g}")
        values.append(float(g))
    if not values:
        raise ValueError(f"{name}: expected at least one γ, got none")
    return tuple(values)


def _losses(path: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    losses = doc.get("losses")
    if isinstance(losses, str):
        losses = [losses]
    if not isinstance(losses, list) or not losses:
        raise ValueError(f"{path}: losses: expected {TOP_KEYS['losses']}, got {losses!r}")
    out = []
    for i, item in enumerate(losses, 1):
        if not isinstance(item, str):
            out.append(_loss(f"{path}: [[losses]] #{i}", item))
            continue
        if item not in _LOSS_SETS:
            raise ValueError(
                f"{path}: losses: unknown loss set {item!r}; expected one of {sorted(_LOSS_SETS)}"
                " or a list of [[losses]] tables"
            )
        set_path = STUDIES_DIR / _LOSS_SETS[item]
        out.extend(_losses(set_path, read_toml(set_path)))
    return out


def read_study(path: str | Path) -> dict[str, Any]:
    """The checked tables of the study file at ``path`` (keys of :data:`TOP_KEYS`, dataset
    roots and OOD roots made absolute, ``recipe`` merged into each dataset's ``overrides``)."""
    path = Path(path)
    doc = read_toml(path)
    _check_table(f"{path}: top-level table", doc, TOP_KEYS, required=("datasets", "losses"))
    if "gamma_grid" in doc:
        check_gamma_grid(doc["gamma_grid"], f"{path}: top-level table: gamma_grid")
    recipe = _recipe(f"{path}: recipe", doc.get("recipe", {}))
    datasets = doc["datasets"]
    if not isinstance(datasets, list) or not datasets:
        raise ValueError(f"{path}: datasets: expected {TOP_KEYS['datasets']}, got {datasets!r}")
    study = {k: v for k, v in doc.items() if k not in ("datasets", "losses", "recipe")}
    study.setdefault("name", path.stem)
    study["datasets"] = [
        _dataset(f"{path}: [[datasets]] #{i}", t, path.parent, recipe)
        for i, t in enumerate(datasets, 1)
    ]
    study["losses"] = _losses(path, doc)
    for kind in ("datasets", "losses"):
        keys = [t["key"] for t in study[kind]]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{path}: [[{kind}]]: keys must be unique, got {keys}")
    return study
