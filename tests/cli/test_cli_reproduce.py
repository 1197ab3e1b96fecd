"""``focalcal reproduce`` and ``focalcal tune-gamma``: their options, and a dry run."""

from __future__ import annotations

import pytest

from focalcal.cli import main


@pytest.mark.parametrize("command", ["reproduce", "tune-gamma"])
def test_help_shares_the_suite_and_hardware_options(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--suite", "--launcher", "slurm", "--data-dir", "--executor-option", "--epochs"):
        assert flag in text, flag
    # the hardware options are the ones `focalcal train` has, declared once on TrainConfig
    for flag in ("--accelerator", "--devices", "--num-nodes", "--strategy", "--precision"):
        assert flag in text, flag


def test_dry_run_lists_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "suite"
    assert (
        main(["reproduce", "--suite", "ci", "--dry-run", "--out", str(out), "--epochs", "2"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("new") and "ce/seed1" in line for line in lines), lines
    assert any("dual_focal/seed1" in line for line in lines), lines
    assert not out.exists()


def test_unknown_suite_lists_the_valid_ones(error_line, capsys):
    assert main(["reproduce", "--suite", "nope", "--dry-run"]) == 2
    line = error_line(capsys.readouterr().err, "reproduce")
    assert "unknown suite 'nope'; expected one of:" in line and "ci" in line


def test_tune_gamma_on_train_options_prints_each_gamma_and_the_choice(tiny_features, run_cli):
    """No suite: the one run that train's options describe, through the real command."""
    out = tiny_features["ind"].parent / "tune-direct"
    args = [
        "tune-gamma", "--dataset", "npz", "--data-root", str(tiny_features["ind"]),
        "--model", "mlp", "--model-option", "hidden=32", "--loss", "dual_focal",
        "--preset", "cpu", "--batch-size", "64", "--deterministic",
        "--grid", "1", "4", "--tune-epochs", "1", "--out", str(out),
    ]  # fmt: skip
    result = run_cli(args)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("[tune-gamma]"))
    assert "γ=1: " in line and "γ=4: " in line and "→ γ=" in line, line
    import json

    record = json.loads((out / "tune-gamma" / "npz-mlp" / "dual_focal.json").read_text())
    assert record["grid"] == [1.0, 4.0] and record["gamma"] in (1.0, 4.0)
    assert record["gamma"] == record["grid"][record["val_ece"].index(min(record["val_ece"]))]


def test_tune_gamma_needs_a_suite_or_a_run(error_line, capsys):
    assert main(["tune-gamma", "--model", "mlp"]) == 2
    line = error_line(capsys.readouterr().err, "tune-gamma")
    assert "--dataset" in line and "--loss" in line
