"""Run configuration: one dataclass, the ``paper`` and ``cpu`` presets and the DFL γ table.

A run is fully described by a :class:`TrainConfig`. :func:`make_config` fills it from a preset
(the papers' protocol or a short CPU schedule), the Dual Focal Loss γ table, then explicit
overrides, in that order; every preset value can be overridden. The config is saved as
``config.json`` beside the run and read back by ``evaluate``/``resume``.

The ``paper`` preset is the protocol shared by Mukhoti et al. (2020) and Tao et al. (2023):
SGD (lr 0.1, momentum 0.9, weight decay 5e-4), batch 128, 350 epochs with the learning rate
×0.1 at epochs 150 and 250 (Tiny-ImageNet: batch 64, 100 epochs, milestones 40 and 60), the
loss summed over the batch and the gradient norm clipped at 2.

Example:
    >>> from focalcal.training.config import make_config
    >>> cfg = make_config("cifar10", "resnet50", "dual_focal")
    >>> cfg.gamma, cfg.epochs, cfg.milestones, cfg.loss_reduction, cfg.grad_clip
    (5.0, 350, [150, 250], 'sum', 2.0)
    >>> make_config("cifar10", "resnet50", "dual_focal", gamma=3.0, epochs=10).gamma
    3.0
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._registry import Registry

__all__ = [
    "DFL_GAMMA",
    "PRESETS",
    "RUNTIME_FIELDS",
    "TrainConfig",
    "config_from_values",
    "default_gamma",
    "load_config",
    "make_config",
    "read_config_file",
    "save_config",
]

#: Dual Focal Loss γ per (dataset, model), chosen by the authors on a 5k validation split
#: (the DFL-ICML README, and the author's answer on that repository's issue tracker).
DFL_GAMMA: dict[tuple[str, str], float] = {
    ("cifar10", "resnet50"): 5.0,
    ("cifar10", "resnet110"): 4.5,
    ("cifar10", "wide_resnet26_10"): 2.6,
    ("cifar10", "densenet121"): 5.0,
    ("cifar100", "resnet50"): 5.0,
    ("cifar100", "resnet110"): 6.1,
    ("cifar100", "wide_resnet26_10"): 3.9,
    ("cifar100", "densenet121"): 3.4,
    ("tiny_imagenet", "resnet50"): 2.3,
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _table_name(registry: Registry[Any], name: str, table_names: set[str]) -> str:
    """The name under which ``name`` appears in a table keyed by ``registry``'s names.

    Every spelling and alias the registry knows maps to its canonical name, and a name whose
    factory is registered under a table name too (``wrn26_10`` and ``wide_resnet26_10``) maps
    to that table name. An unregistered name is compared without case and separators
    (``CIFAR-10`` is ``cifar10``).
    """
    if name in registry:
        canonical = registry.canonical(name)
        factory = registry.factory(canonical)
        same = [t for t in table_names if t in registry and registry.factory(t) is factory]
        return same[0] if canonical not in table_names and same else canonical
    compact = name.strip().lower().replace("-", "").replace("_", "")
    return next((t for t in table_names if t.replace("_", "") == compact), compact)


def default_gamma(loss: str, dataset: str, model: str) -> float | None:
    """The DFL table's γ for ``(dataset, model)`` when ``loss`` is Dual Focal (under any of its
    registered names), else ``None``.

    Example:
        >>> default_gamma("dual_focal", "CIFAR-100", "wrn26_10")
        3.9
        >>> default_gamma("dual_focal_loss", "cifar100", "resnet110")
        6.1
        >>> default_gamma("focal", "cifar10", "resnet50") is None
        True
    """
    from ..data import DATASETS
    from ..losses import LOSSES as loss_registry
    from ..models import MODELS

    if loss not in loss_registry or loss_registry.canonical(loss) != "dual_focal":
        return None
    ds = _table_name(DATASETS, dataset, {d for d, _ in DFL_GAMMA})
    mdl = _table_name(MODELS, model, {m for _, m in DFL_GAMMA})
    return DFL_GAMMA.get((ds, mdl))


def _option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    group: str = "recipe",
    factory: Any = None,
    **flag: Any,
) -> dict[str, Any]:
    """The ``dataclasses.field`` arguments of a :class:`TrainConfig` field: its default and its
    command-line declaration in ``metadata``.

    ``metadata`` holds ``help`` and ``group`` (``"what"``, ``"recipe"``, ``"hardware"``) and,
    where needed, ``choices``, ``metavar``, ``flag`` (the option name when it is not the field
    name), ``off`` (the help of a ``--no-…`` option that sets the field to ``None``), ``hidden``
    and ``runtime`` (may differ between a run and its resumed continuation).
    The ``focalcal train`` options are generated from these declarations.
    """
    metadata = {"help": help, "group": group, "runtime": False, **flag}
    if factory is not None:
        return {"default_factory": factory, "metadata": metadata}
    return {"default": default, "metadata": metadata}


_OPTIMIZERS = ("sgd", "adam", "adamw")
_PRECISIONS = ("32-true", "32", "64-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true")


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-serialisable).

    ``train_size`` trains on a class-stratified subset of that many training samples, the same
    for every loss and seed (:func:`focalcal.data.stratified_subset_indices`, seed 0); ``None``
    uses the whole training split. ``batch_size`` is the global batch: under DDP each of the
    ``W`` processes gets ``batch_size / W`` samples. ``loss_reduction="sum"`` (the papers) sums
    the loss over the local batch; ``grad_clip`` clips the global gradient norm before every
    step. Each field's ``metadata["help"]`` documents it (and is its ``focalcal train`` help).
    """

    dataset: str = field(
        **_option(help="dataset name of the data registry (e.g. cifar10, npz)", group="what")
    )
    model: str = field(
        **_option(help="model name of the model registry (e.g. resnet50, mlp)", group="what")
    )
    loss: str = field(
        **_option(
            "ce", help="loss name of the loss registry (e.g. ce, flsd53, dual_focal)", group="what"
        )
    )
    preset: str = field(
        **_option("paper", help="recipe defaults: paper (the papers' protocol) or cpu (short)")
    )
    gamma: float | None = field(
        **_option(
            None,
            help="γ of focal-type losses (default: the DFL paper's table for dual_focal)",
            group="what",
        )
    )
    loss_options: dict[str, Any] = field(
        **_option(
            factory=dict,
            help="extra loss argument (repeatable), e.g. lam=2",
            group="what",
            flag="--loss-option",
            metavar="KEY=VALUE",
        )
    )
    model_options: dict[str, Any] = field(
        **_option(
            factory=dict,
            help="extra model argument (repeatable), e.g. hidden=512",
            group="what",
            flag="--model-option",
            metavar="KEY=VALUE",
        )
    )
    dataset_options: dict[str, Any] = field(
        **_option(
            factory=dict,
            help="extra dataset argument (repeatable), e.g. val_size=5000",
            group="what",
            flag="--dataset-option",
            metavar="KEY=VALUE",
        )
    )
    data_root: str | None = field(
        **_option(None, help="dataset folder, or the .npz file for --dataset npz", group="what")
    )
    ood: list[str] = field(
        **_option(
            factory=list,
            help="OOD test sets to evaluate (e.g. svhn cifar10_c, or npz:other.npz)",
            group="what",
            metavar="NAME[:ROOT]",
        )
    )
    ood_options: dict[str, Any] = field(
        **_option(
            factory=dict,
            help="OOD loader option (repeatable): KEY=VALUE for every OOD set, NAME.KEY=VALUE for "
            "the set NAME only, e.g. cifar10_c.severity=5",
            group="what",
            flag="--ood-option",
            metavar="[NAME.]KEY=VALUE",
        )
    )
    train_size: int | None = field(
        **_option(
            None,
            help="train on a class-stratified subset of this many training samples (default: all)",
        )
    )
    epochs: int = field(**_option(350, help="training epochs (paper: 350; cpu: 20)"))
    batch_size: int = field(**_option(128, help="global batch, split across processes (128)"))
    eval_batch_size: int = field(**_option(500, help="evaluation batch size (500)"))
    val_every: int = field(
        **_option(
            1,
            help="score the validation split every N epochs (1); the last epoch, and losses "
            "that learn from it (AdaFocal), are scored every time",
            metavar="N",
            runtime=True,
        )
    )
    optimizer: str = field(**_option("sgd", help="optimiser (sgd)", choices=_OPTIMIZERS))
    lr: float = field(**_option(0.1, help="learning rate (0.1)"))
    momentum: float = field(**_option(0.9, help="SGD momentum (0.9)"))
    weight_decay: float = field(**_option(5e-4, help="weight decay (5e-4)"))
    milestones: list[int] = field(
        **_option(
            factory=lambda: [150, 250],
            help="epochs where lr *= --lr-decay (paper: 150 250; cpu: 10 15)",
            metavar="EPOCH",
        )
    )
    lr_decay: float = field(**_option(0.1, help="MultiStepLR factor (0.1)"))
    loss_reduction: str = field(
        **_option("sum", help="sum over the batch (papers) or mean", choices=("sum", "mean"))
    )
    grad_clip: float | None = field(
        **_option(2.0, help="gradient-norm clip (papers: 2)", off="disable gradient clipping")
    )
    seed: int = field(**_option(1, help="seed of init, shuffling and augmentation (1)"))
    num_workers: int = field(**_option(0, help="data-loader workers", hidden=True, runtime=True))
    accelerator: str = field(
        **_option("auto", help="auto, cpu, gpu (cuda), mps, ...", group="hardware", runtime=True)
    )
    devices: int | str = field(
        **_option(
            "auto",
            help="number of devices per node (>= 1), or 'auto'",
            group="hardware",
            runtime=True,
        )
    )
    num_nodes: int = field(
        **_option(
            1, help="number of nodes (multi-node DDP, e.g. SLURM)", group="hardware", runtime=True
        )
    )
    strategy: str = field(
        **_option("auto", help="auto, ddp, ddp_spawn, ...", group="hardware", runtime=True)
    )
    precision: str = field(
        **_option(
            "32-true", help="numeric precision", group="hardware", choices=_PRECISIONS, runtime=True
        )
    )
    deterministic: bool = field(
        **_option(
            False, help="deterministic algorithms (reproducible, slower on GPU)", group="hardware"
        )
    )
    n_bins: int = field(**_option(15, help="calibration bins (default 15)"))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; errors name the field, the expected and the received value."""
        # imported here: the declarations above must stay importable without torch, so that
        # `focalcal --help` can build its parser from them quickly
        from .._validation import check_choice, check_int, check_positive

        for name in ("dataset", "model", "loss", "preset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"{name}: expected a non-empty string, got {value!r}")
        if self.gamma is not None:
            check_positive(self.gamma, "gamma", allow_zero=True)
        for name in ("loss_options", "model_options", "dataset_options", "ood_options"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name}: expected a dict, got {getattr(self, name)!r}")
        if not isinstance(self.ood, list) or not all(isinstance(o, str) for o in self.ood):
            raise TypeError(f"ood: expected a list of dataset names, got {self.ood!r}")
        if self.train_size is not None:
            check_int(self.train_size, "train_size", min_value=1)
        check_int(self.epochs, "epochs", min_value=1)
        check_int(self.batch_size, "batch_size", min_value=1)
        check_int(self.eval_batch_size, "eval_batch_size", min_value=1)
        check_int(self.val_every, "val_every", min_value=1)
        check_choice(self.optimizer, "optimizer", _OPTIMIZERS)
        check_positive(self.lr, "lr")
        check_positive(self.momentum, "momentum", allow_zero=True)
        check_positive(self.weight_decay, "weight_decay", allow_zero=True)
        if not isinstance(self.milestones, list):
            raise TypeError(f"milestones: expected a list of epochs, got {self.milestones!r}")
        for m in self.milestones:
            check_int(m, "milestones", min_value=1)
        if self.milestones != sorted(self.milestones):
            raise ValueError(f"milestones: expected increasing epochs, got {self.milestones}")
        check_positive(self.lr_decay, "lr_decay")
        check_choice(self.loss_reduction, "loss_reduction", ("sum", "mean"))
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")
        check_int(self.seed, "seed", min_value=0)
        check_int(self.num_workers, "num_workers", min_value=0)
        check_int(self.num_nodes, "num_nodes", min_value=1)
        _check_devices(self.devices)
        check_choice(self.precision, "precision", _PRECISIONS)
        if not isinstance(self.deterministic, bool):
            raise TypeError(f"deterministic: expected a bool, got {self.deterministic!r}")
        check_int(self.n_bins, "n_bins", min_value=1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise TypeError(
                f"config: unknown keys {sorted(unknown)}; expected a subset of {sorted(_FIELDS)}"
            )
        return cls(**data)


def _check_devices(devices: Any) -> None:
    """Lightning's ``devices``: a count >= 1, -1 (every visible device), ``"auto"`` or a
    comma-separated list of device indices such as ``"0,1"``."""
    if isinstance(devices, bool) or not isinstance(devices, (int, str)):
        raise TypeError(f"devices: expected a count >= 1, -1, 'auto' or '0,1', got {devices!r}")
    if isinstance(devices, int) and devices < 1 and devices != -1:
        raise ValueError(
            f"devices: expected a count >= 1 (or -1 for every visible device), got {devices}; "
            "pass --devices 1 or more"
        )
    if isinstance(devices, str) and devices != "auto":
        indices = [part.strip() for part in devices.split(",") if part.strip()]
        if not indices or not all(part.isdigit() for part in indices):
            raise ValueError(
                f"devices: expected a count, 'auto' or device indices such as '0,1', got "
                f"{devices!r}"
            )


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}

#: Config fields that may differ between a run and its resumed continuation (the hardware it
#: runs on, not the recipe).
RUNTIME_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["runtime"])

#: Presets: ``name -> factory(dataset) -> dict`` of TrainConfig defaults.
PRESETS: Registry[dict[str, Any]] = Registry("preset")


@PRESETS.register("paper")
def _paper_preset(dataset: str) -> dict[str, Any]:
    """The papers' protocol (Mukhoti et al. 2020 §5, Tao et al. 2023 §5)."""
    preset: dict[str, Any] = {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "epochs": 350,
        "milestones": [150, 250],
        "lr_decay": 0.1,
        "loss_reduction": "sum",
        "grad_clip": 2.0,
    }
    if "tiny" in _key(dataset):
        preset.update(batch_size=64, epochs=100, milestones=[40, 60])
    return preset


@PRESETS.register("cpu")
def _cpu_preset(dataset: str) -> dict[str, Any]:
    """The paper's optimiser, loss scale and clipping with a 20-epoch schedule (×0.1 at 10, 15).

    On the 20 Newsgroups embeddings with a 2×256 MLP this separates CE, FLSD-53 and DFL clearly
    (test ECE about 13%, 4% and 2%) in seconds per run on one CPU core.
    """
    preset = _paper_preset(dataset)
    preset.update(epochs=20, milestones=[10, 15], accelerator="cpu", devices=1)
    return preset


def _preset_values(dataset: str, model: str, loss: str, preset: str) -> dict[str, Any]:
    values: dict[str, Any] = dict(PRESETS.get(preset, dataset=dataset))
    values["gamma"] = default_gamma(loss, dataset, model)
    return values


def _check_known(keys: Any, where: str = "") -> None:
    unknown = sorted(set(keys) - _FIELDS)
    if unknown:
        raise TypeError(
            f"unknown config fields {unknown}{where}; expected some of {sorted(_FIELDS)}"
        )


def make_config(
    dataset: str, model: str, loss: str = "ce", preset: str = "paper", **overrides: Any
) -> TrainConfig:
    """Build a :class:`TrainConfig`: preset defaults ← DFL γ table ← ``overrides``.

    ``None`` overrides are ignored (so CLI flags that were not given keep the preset value).
    Unknown presets or fields raise, listing the valid ones.
    """
    values = _preset_values(dataset, model, loss, preset)
    _check_known(overrides)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(dataset=dataset, model=model, loss=loss, preset=preset, **values)


def config_from_values(values: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from explicit field values: preset ← DFL γ ← ``values``.

    Unlike :func:`make_config`, an explicit ``None`` is kept (``grad_clip=None`` turns clipping
    off), so a finished run's ``config.json`` read back gives exactly that run's config.
    ``values`` must hold ``dataset`` and ``model``; ``loss`` defaults to ``"ce"`` and ``preset``
    to ``"paper"``.

    Example:
        >>> config_from_values({"dataset": "npz", "model": "mlp", "grad_clip": None}).grad_clip
        >>> config_from_values({"dataset": "npz", "model": "mlp", "preset": "cpu"}).epochs
        20
    """
    _check_known(values)
    missing = [key for key in ("dataset", "model") if key not in values]
    if missing:
        raise ValueError(f"config: missing {', '.join(missing)}; expected both to be given")
    loss, preset = values.get("loss", "ce"), values.get("preset", "paper")
    merged = _preset_values(values["dataset"], values["model"], loss, preset) | values
    return TrainConfig(**{**merged, "loss": loss, "preset": preset})


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as indented JSON, atomically."""
    from .._io import atomic_write_text  # not at the top: `focalcal --help` needs none of it

    atomic_write_text(path, json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The :class:`TrainConfig` fields in a JSON or TOML (``*.toml``) file, as a dict.

    The file holds a flat table of field names (those of ``config.json``, a finished run's
    saved config, or any subset). Unknown keys, unreadable or malformed files raise an error
    naming the file.

    Example:
        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "run.json")
        >>> _ = open(path, "w").write(json.dumps({"dataset": "npz", "epochs": 3}))
        >>> read_config_file(path)
        {'dataset': 'npz', 'epochs': 3}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no file at {path}; expected a JSON or TOML config file")
    is_toml = path.suffix.lower() == ".toml"
    try:
        text = path.read_text(encoding="utf-8")
        data = _toml().loads(text) if is_toml else json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError and TOMLDecodeError
        kind = "TOML" if is_toml else "JSON"
        raise ValueError(
            f"config: {path} is not valid {kind} ({err}); fix the file, or delete it and write "
            "it again"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"config: {path} must hold a table of fields, got {type(data).__name__}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ValueError(
            f"config: unknown key {unknown[0]!r} in {path}; expected TrainConfig fields "
            f"({', '.join(sorted(_FIELDS))})"
        )
    return data


def _toml() -> Any:
    """``tomllib`` (Python 3.11+) or its backport ``tomli``."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ImportError(
                "reading a TOML config needs Python 3.11+ or the tomli package; install it with: "
                "pip install tomli (or give the config as JSON)"
            ) from None
    return tomllib


def load_config(path: str | Path) -> TrainConfig:
    """Read a config written by :func:`save_config`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no {path.name} at {path}; is this a focalcal run folder?")
    return TrainConfig.from_dict(read_config_file(path))


def parse_key_value(text: str) -> tuple[str, Any]:
    """Parse a ``KEY=VALUE`` command-line option, VALUE as JSON when possible.

    Example:
        >>> parse_key_value("hidden=512"), parse_key_value("name=x")
        (('hidden', 512), ('name', 'x'))
    """
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
