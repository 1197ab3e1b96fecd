"""``focalcal --help`` is complete and bad input fails with a message that helps."""

from __future__ import annotations

import pytest

from focalcal.cli import build_parser, main

TRAIN_FLAGS = (
    "--dataset", "--model", "--loss", "--gamma", "--preset", "--out", "--data-root", "--ood",
    "--epochs", "--train-size", "--batch-size", "--lr", "--momentum", "--weight-decay", "--milestones",
    "--lr-decay", "--loss-reduction", "--grad-clip", "--seed", "--devices", "--num-nodes",
    "--strategy", "--precision", "--deterministic", "--resume", "--overwrite", "--ts-criterion",
    "--n-bootstrap", "--accelerator", "--model-option", "--loss-option", "--dataset-option",
)  # fmt: skip


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    text = _help(capsys)
    for command in ("train", "evaluate", "compare", "demo", "list", "reproduce", "tune-gamma"):
        assert command in text
    assert "torchrun" in text  # the multi-GPU example


def test_train_help_documents_every_flag(capsys):
    text = _help(capsys, "train")
    for flag in TRAIN_FLAGS:
        assert flag in text, flag
    # every option of every subcommand carries a help text
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        if name in ("reproduce", "tune-gamma"):  # the reproduction suite's own commands
            continue
        for action in subparser._actions:
            if action.option_strings:
                assert action.help, (name, action.dest)


@pytest.mark.parametrize("command", ["evaluate", "compare", "demo"])
def test_subcommand_help(capsys, command):
    text = _help(capsys, command)
    assert "--n-bootstrap" in text
    if command != "demo":
        assert "--ts-criterion" in text


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


BASE = ["train", "--preset", "cpu", "--epochs", "1", "--no-progress"]


def test_unknown_names_list_the_valid_ones(capsys, tmp_path):
    out = ["--out", str(tmp_path / "r")]
    err = _error(
        capsys, [*BASE, "--dataset", "cifar10", "--model", "resnet20", "--loss", "dfll", *out]
    )
    assert "unknown loss 'dfll'; expected one of:" in err and "dual_focal" in err
    err = _error(
        capsys, [*BASE, "--dataset", "cifar10", "--model", "resnet21", "--loss", "ce", *out]
    )
    assert "unknown model 'resnet21'; expected one of:" in err and "resnet20" in err
    err = _error(
        capsys, [*BASE, "--dataset", "cifar11", "--model", "resnet20", "--loss", "ce", *out]
    )
    assert "unknown dataset 'cifar11'; expected one of:" in err and "cifar10" in err
    err = _error(capsys, [*BASE, "--dataset", "cifar10", "--model", "resnet20", "--loss", "ce",
                          "--preset", "quick", *out])  # fmt: skip
    assert "unknown preset 'quick'; expected one of: cpu, paper" in err
    assert not (tmp_path / "r").exists()  # nothing written for a bad command


def test_missing_dataset_says_how_to_get_it(capsys, tmp_path):
    err = _error(capsys, [*BASE, "--dataset", "cifar10", "--data-root", str(tmp_path / "none"),
                          "--model", "resnet20", "--loss", "ce", "--out", str(tmp_path / "r")])  # fmt: skip
    assert "download" in err.lower() and str(tmp_path / "none") in err


def test_missing_arguments_and_bad_values(capsys, tmp_path):
    err = _error(capsys, ["train", "--dataset", "cifar10"])
    assert "missing --model, --loss" in err
    err = _error(capsys, ["train", "--resume"])
    assert "--resume: expected --out" in err
    err = _error(capsys, ["train", "--resume", "--out", str(tmp_path / "nothing")])
    assert "no config.json" in err or "nothing" in err
    err = _error(capsys, [*BASE, "--dataset", "cifar10", "--model", "resnet20", "--loss", "ce",
                          "--lr", "-1"])  # fmt: skip
    assert "lr: expected a finite number > 0, got -1" in err
    err = _error(capsys, ["evaluate", str(tmp_path)])
    assert "config.json" in err
    with pytest.raises(SystemExit):
        main(["train", "--model-option", "no-equals-sign"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_non_run_folder_is_never_deleted(capsys, tmp_path, tiny_features):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    args = [*BASE, "--dataset", "npz", "--data-root", str(tiny_features["ind"]), "--model", "mlp",
            "--loss", "ce", "--out", str(precious)]  # fmt: skip
    assert "not empty" in _error(capsys, args)
    assert "refusing to delete" in _error(capsys, [*args, "--overwrite"])
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_list_shows_the_registries(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "losses:" in text and "dual_focal" in text and "presets: cpu, paper" in text
    assert "models:" in text and "resnet110" in text and "datasets:" in text and "npz" in text
