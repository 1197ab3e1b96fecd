"""Config, presets and the DFL γ table against the papers' protocol (Mukhoti et al. 2020 §5,
Tao et al. 2023 §5); the config declaration that the `focalcal train` options come from."""

from __future__ import annotations

import json

import pytest

from focalcal.training.config import (
    DFL_GAMMA,
    PRESETS,
    TrainConfig,
    default_gamma,
    load_config,
    make_config,
    save_config,
)

# The published tables (the DFL authors' code release), restated independently here.
PUBLISHED_DFL_GAMMA = {
    "cifar10": {"resnet50": 5, "resnet110": 4.5, "wide_resnet26_10": 2.6, "densenet121": 5},
    "cifar100": {"resnet50": 5, "resnet110": 6.1, "wide_resnet26_10": 3.9, "densenet121": 3.4},
    "tiny_imagenet": {"resnet50": 2.3},
}


@pytest.mark.parametrize(
    ("dataset", "model", "gamma"),
    [(d, m, g) for d, table in PUBLISHED_DFL_GAMMA.items() for m, g in table.items()],
)
def test_dfl_gamma_table_is_the_default(dataset, model, gamma):
    assert make_config(dataset, model, "dual_focal").gamma == gamma
    assert make_config(dataset, model, "dfl", preset="cpu").gamma == gamma
    assert make_config(dataset, model, "dual_focal", gamma=1.5).gamma == 1.5  # override wins


def test_dfl_gamma_aliases_and_other_losses():
    assert len(DFL_GAMMA) == 9
    assert default_gamma("dual_focal", "CIFAR-10", "wrn26_10") == 2.6
    assert default_gamma("dual_focal", "tiny-imagenet", "resnet50") == 2.3
    assert default_gamma("dual_focal", "svhn", "resnet50") is None
    assert default_gamma("focal", "cifar10", "resnet50") is None
    assert make_config("cifar10", "resnet50", "ce").gamma is None


def test_paper_preset_is_the_papers_protocol():
    cfg = make_config("cifar10", "resnet50", "flsd53")
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (cfg.batch_size, cfg.epochs, cfg.milestones, cfg.lr_decay) == (128, 350, [150, 250], 0.1)
    assert (cfg.loss_reduction, cfg.grad_clip, cfg.n_bins) == ("sum", 2.0, 15)
    tiny = make_config("tiny_imagenet", "resnet50", "dual_focal")
    assert (tiny.batch_size, tiny.epochs, tiny.milestones) == (64, 100, [40, 60])


def test_cpu_preset_is_short_and_keeps_the_papers_optimiser():
    cpu = make_config("npz", "mlp", "ce", preset="cpu")
    paper = make_config("npz", "mlp", "ce")
    assert cpu.epochs < 50 and all(m < cpu.epochs for m in cpu.milestones)
    assert cpu.accelerator == "cpu"
    for key in ("optimizer", "lr", "momentum", "weight_decay", "loss_reduction", "grad_clip"):
        assert getattr(cpu, key) == getattr(paper, key)
    assert PRESETS.names() == ["cpu", "paper"]


def test_every_preset_value_can_be_overridden():
    cfg = make_config(
        "cifar10", "resnet50", "ce", epochs=3, lr=0.05, milestones=[1, 2], grad_clip=None,
        loss_reduction="mean", batch_size=32,
    )  # fmt: skip
    assert (cfg.epochs, cfg.lr, cfg.milestones, cfg.loss_reduction, cfg.batch_size) == (
        3, 0.05, [1, 2], "mean", 32,
    )  # fmt: skip
    assert cfg.grad_clip == 2.0  # None means "not given", as for CLI flags
    cfg.grad_clip = None
    cfg.validate()


def test_json_round_trip(tmp_path):
    cfg = make_config("cifar10", "wrn26_10", "dual_focal", ood=["svhn"], model_options={"a": 1})
    save_config(cfg, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text())["gamma"] == 2.6
    assert load_config(tmp_path / "config.json") == cfg
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs: expected an integer >= 1, got 0"),
        ({"epochs": 2.5}, TypeError, "epochs: expected an integer"),
        ({"lr": -1.0}, ValueError, "lr: expected a finite number > 0"),
        ({"milestones": [250, 150]}, ValueError, "milestones: expected increasing"),
        ({"optimizer": "rmsprop"}, ValueError, r"optimizer: expected one of \['sgd'"),
        ({"precision": "8-bit"}, ValueError, "precision: expected one of"),
        ({"loss_reduction": "none"}, ValueError, "loss_reduction"),
        ({"gamma": -1.0}, ValueError, "gamma"),
        ({"ood": "svhn"}, TypeError, "ood: expected a list"),
        ({"deterministic": 1}, TypeError, "deterministic: expected a bool"),
        ({"learning_rate": 0.1}, TypeError, "unknown config fields"),
    ],
)
def test_bad_values_name_the_field(overrides, error, match):
    with pytest.raises(error, match=match):
        make_config("cifar10", "resnet50", "ce", **overrides)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown preset 'fast'; expected one of: cpu, paper"):
        make_config("cifar10", "resnet50", "ce", preset="fast")


def test_from_dict_rejects_unknown_keys(tmp_path):
    data = make_config("cifar10", "resnet50", "ce").to_dict() | {"colour": "red"}
    with pytest.raises(TypeError, match=r"unknown keys \['colour'\]"):
        TrainConfig.from_dict(data)
    with pytest.raises(FileNotFoundError, match="is this a focalcal run folder"):
        load_config(tmp_path / "config.json")


def test_ood_options_apply_to_every_set_or_to_one_named_set() -> None:
    from focalcal.training.run import ood_options_for

    options = {"seed": 3, "cifar10_c.severity": 5, "cifar10_c.seed": 7, "svhn.download": True}
    assert ood_options_for("cifar10_c", options) == {"seed": 7, "severity": 5}
    assert ood_options_for("svhn", options) == {"seed": 3, "download": True}
    assert ood_options_for("tiny_imagenet", options) == {"seed": 3}


def test_paper_suite_uses_the_papers_cifar10_c_set() -> None:
    from focalcal.training.run import ood_options_for
    from focalcal.training.suites import get_suite

    suite = get_suite("paper")
    cifar10 = [d for d in suite.datasets if d.dataset == "cifar10"]
    assert cifar10
    for spec in cifar10:
        assert "cifar10_c" in spec.ood
        assert ood_options_for("cifar10_c", spec.ood_options) == {
            "corruption": "gaussian_noise",
            "severity": 5,
        }
        assert ood_options_for("svhn", spec.ood_options) == {}


# ----------------------------------------------------------------------------- the declaration


def test_every_field_declares_its_option():
    import dataclasses

    from focalcal.training.config import RUNTIME_FIELDS

    for spec in dataclasses.fields(TrainConfig):
        assert spec.metadata["help"].strip(), spec.name
        assert spec.metadata["group"] in ("what", "recipe", "hardware"), spec.name
    # the hardware and how often the validation split is scored may change when a run is
    # resumed or reused; the recipe (and determinism) may not
    assert RUNTIME_FIELDS == {"accelerator", "devices", "num_nodes", "strategy", "precision",
                              "num_workers", "val_every"}  # fmt: skip


def test_train_flags_are_generated_from_the_declaration(capsys):
    """Every field is a `focalcal train` option with its declared help, type and choices."""
    import dataclasses

    from focalcal.cli import build_parser

    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    options = [a for a in train._actions if a.option_strings]
    for spec in dataclasses.fields(TrainConfig):
        action = next(a for a in options if a.dest == spec.name)  # --grad-clip, then --no-…
        if not spec.metadata.get("hidden"):
            assert action.help == spec.metadata["help"], spec.name
        assert action.choices == spec.metadata.get("choices"), spec.name
    args = parser.parse_args(["train", "--epochs", "3", "--lr", "0.5", "--milestones",
                              "--no-grad-clip", "--loss-option", "lam=2", "--devices", "2"])  # fmt: skip
    assert (args.epochs, args.lr, args.milestones, args.grad_clip) == (3, 0.5, [], None)
    assert (args.loss_options, args.devices) == ([("lam", 2)], 2)
    assert not hasattr(args, "batch_size")  # not given: the preset or --config decides


def test_config_from_values_keeps_an_explicit_none():
    from focalcal.training.config import config_from_values

    cfg = config_from_values({"dataset": "cifar10", "model": "resnet50", "grad_clip": None})
    assert cfg.grad_clip is None and cfg.epochs == 350  # the rest from the paper preset
    cfg = config_from_values({"dataset": "cifar100", "model": "resnet110", "loss": "dual_focal"})
    assert cfg.gamma == 6.1  # the DFL table, as make_config
    with pytest.raises(ValueError, match="config: missing model"):
        config_from_values({"dataset": "cifar10"})
    with pytest.raises(TypeError, match=r"unknown config fields \['colour'\]"):
        config_from_values({"dataset": "cifar10", "model": "mlp", "colour": "red"})


def test_config_files_json_and_toml(tmp_path):
    from focalcal.training.config import read_config_file

    (tmp_path / "a.toml").write_text('dataset = "npz"\nmilestones = [2, 3]\ngrad_clip = 1.5\n')
    assert read_config_file(tmp_path / "a.toml") == {
        "dataset": "npz", "milestones": [2, 3], "grad_clip": 1.5,
    }  # fmt: skip
    saved = make_config("cifar10", "resnet50", "dual_focal")
    save_config(saved, tmp_path / "config.json")
    assert TrainConfig(**read_config_file(tmp_path / "config.json")) == saved
    (tmp_path / "bad.json").write_text('{"dataset": "npz", "colour": 1}')
    with pytest.raises(ValueError, match=r"unknown key 'colour' in .*bad\.json"):
        read_config_file(tmp_path / "bad.json")
    (tmp_path / "cut.json").write_text('{"dataset": "np')
    with pytest.raises(ValueError, match=r"cut\.json is not valid JSON"):
        load_config(tmp_path / "cut.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a table of fields, got list"):
        read_config_file(tmp_path / "list.json")


@pytest.mark.parametrize(
    ("devices", "error", "match"),
    [
        (0, ValueError, "devices: expected a count >= 1"),
        (-2, ValueError, "got -2"),
        ("0,x", ValueError, "device indices"),
        (True, TypeError, "devices: expected a count"),
        (1.5, TypeError, "devices: expected a count"),
    ],
)
def test_devices_are_checked(devices, error, match):
    with pytest.raises(error, match=match):
        make_config("cifar10", "resnet50", "ce", devices=devices)


def test_valid_devices():
    for devices in (1, 8, -1, "auto", "0,1", "3"):
        assert make_config("cifar10", "resnet50", "ce", devices=devices).devices == devices
