"""``plan_runs`` (what ``reproduce --dry-run`` prints) and the data folder's search order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from focalcal.training import plan_runs
from focalcal.training.suites import DATA_ENV, get_suite, resolve_data_dir


def test_plan_lists_every_run_with_its_state(tmp_path: Path) -> None:
    plan = plan_runs("ci", tmp_path)
    assert [s.name for s in plan.specs] == ["20ng-subset/ce/seed1", "20ng-subset/dual_focal/seed1"]
    assert plan.states == ("new", "new") and plan.searched == ("dual_focal",)
    lines = plan.lines()
    assert lines[0] == "new       20ng-subset/ce/seed1"
    assert lines[1] == "new       20ng-subset/dual_focal/seed1 (γ=5)"  # untuned: the table's mode
    assert lines[2] == "(γ of ['dual_focal'] is chosen by the γ search first: [2.0, 5.0])"
    assert not (tmp_path / "runs").exists()  # nothing was created
    assert plan_runs("ci", tmp_path, tune=False).lines()[-1].startswith("new ")


def test_data_folder_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert resolve_data_dir() is None
    assert resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"  # the argument wins


def test_data_folder_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    text = get_suite("cpu-text").plan(tmp_path, seeds=1)[0].config["data_root"]
    assert text.endswith("20news-minilm-l6-f16.npz")  # no data folder: the packaged copy
    (tmp_path / "data" / "cifar10-jpeg").mkdir(parents=True)
    vision = get_suite("cpu-vision").select(datasets=["cifar10-jpeg"])
    with pytest.raises(FileNotFoundError, match=f"data not found.*--data-dir.*{DATA_ENV}"):
        vision.plan(tmp_path / "out", seeds=1)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    spec = vision.plan(tmp_path / "out", seeds=1)[0]
    assert spec.config["data_root"] == str(tmp_path / "data" / "cifar10-jpeg")
    # Fashion-MNIST without a copy in the data folder: the loader's own default location
    fashion = get_suite("cpu-vision").select(datasets=["fashion-mnist"])
    assert fashion.plan(tmp_path / "out", seeds=1)[0].config["data_root"] is None


def test_plan_reads_earlier_searches_of_every_option(tmp_path: Path) -> None:
    # a record written before other options could be tuned (no "option"/"value"), and a
    # record of another option than the study's (stale): the first is used, the second not
    search = tmp_path / "tune-gamma" / "20ng"
    search.mkdir(parents=True)
    (search / "dual_focal.json").write_text(json.dumps({"loss": "dual_focal", "gamma": 3.0}))
    (search / "mbls.json").write_text(json.dumps({"option": "alpha", "value": 0.5}))
    (search / "mdca.json").write_text(json.dumps({"option": "beta", "value": 5.0}))
    suite = get_suite("cpu-text").select(losses=["dual_focal", "mbls", "mdca"])
    plan = plan_runs(suite, tmp_path, seeds=1)
    configs = {s.loss_key: s.config for s in plan.specs}
    assert configs["dual_focal"]["gamma"] == 3.0
    assert configs["mbls"]["loss_options"] == {"alpha": 0.1, "convention": "official"}
    assert configs["mdca"]["loss_options"] == {"beta": 5.0}
    assert plan.searched == ("mbls",)
    assert (
        plan.lines()[-1]
        == "(chosen by the validation search first: mbls margin ∈ [5.0, 10.0, 15.0])"
    )
    fresh = plan_runs(suite, tmp_path / "fresh", seeds=1)
    assert fresh.searched == ("dual_focal", "mbls", "mdca")
    assert fresh.lines()[-1] == (
        "(chosen by the validation search first: dual_focal γ ∈ [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]"
        ", mbls margin ∈ [5.0, 10.0, 15.0], mdca β ∈ [1.0, 5.0, 10.0])"
    )
