"""``focalcal train --config FILE``: a JSON or TOML file of config fields, flags over it."""

from __future__ import annotations

import json

import numpy as np

from focalcal.cli import main


def test_a_finished_runs_config_reproduces_it(tmp_path, tiny_features, train_args, run_cli):
    first = tmp_path / "A"
    args = train_args(tiny_features["ind"], first, "flsd53", "--no-grad-clip", "--no-evaluate")
    assert main(args) == 0
    config = json.loads((first / "config.json").read_text())
    assert config["grad_clip"] is None and config["loss"] == "flsd53"  # the flags were kept

    again = tmp_path / "B"  # in a fresh process: nothing carried over but the file
    args = ["train", "--config", str(first / "config.json"), "--out", str(again), "--no-progress"]
    done = run_cli([*args, "--no-evaluate"])
    assert done.returncode == 0, done.stderr[-3000:]
    # an explicit null (no clipping) survives the round trip instead of the preset's 2.0
    assert json.loads((again / "config.json").read_text()) == config
    with np.load(first / "logits.npz") as a, np.load(again / "logits.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:  # deterministic CPU mode: the same run, bit for bit
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_toml_file_with_flags_overriding_it(tmp_path, tiny_features):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f'dataset = "npz"\nmodel = "mlp"\nloss = "dual_focal"\npreset = "cpu"\n'
        f'data_root = "{tiny_features["ind"]}"\nepochs = 5\nmilestones = [1]\ngamma = 2.5\n'
        "batch_size = 64\nmodel_options = {hidden = 16}\ndeterministic = true\n"
    )
    out = tmp_path / "run"
    args = ["train", "--config", str(recipe), "--epochs", "1", "--lr", "0.05", "--out", str(out)]
    assert main([*args, "--no-evaluate", "--no-progress"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["epochs"], saved["lr"]) == (1, 0.05)  # the flags win over the file
    assert (saved["gamma"], saved["milestones"], saved["model_options"]) == (
        2.5, [1], {"hidden": 16},
    )  # fmt: skip
    assert (saved["preset"], saved["accelerator"], saved["deterministic"]) == ("cpu", "cpu", True)


def test_bad_config_files_are_one_line_errors(error_line, tmp_path, capsys):
    unknown = tmp_path / "typo.json"
    unknown.write_text(json.dumps({"dataset": "npz", "model": "mlp", "learning_rate": 0.1}))
    out = ["--out", str(tmp_path / "r")]
    assert main(["train", "--config", str(unknown), "--loss", "ce", *out]) == 2
    line = error_line(capsys.readouterr().err)
    assert "unknown key 'learning_rate'" in line and str(unknown) in line and "lr" in line

    broken = tmp_path / "broken.toml"
    broken.write_text('dataset = "npz\n')
    assert main(["train", "--config", str(broken), *out]) == 2
    line = error_line(capsys.readouterr().err)
    assert "is not valid TOML" in line and str(broken) in line

    assert main(["train", "--config", str(tmp_path / "absent.json")]) == 2
    assert "no file at" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()
