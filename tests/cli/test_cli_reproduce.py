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
