"""``plan_runs`` (what ``reproduce --dry-run`` prints) and the data folder's search order."""

from __future__ import annotations

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
