"""The declared suites, the CLI surface and the submitit launcher (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightning")

from focalcal.cli import build_parser, main
from focalcal.training import reproduce, tune_gamma
from focalcal.training.launchers import LAUNCHERS, LaunchOptions
from focalcal.training.launchers import launch as _launch
from focalcal.training.run import build_loss
from focalcal.training.suites import PAPER_LOSSES, SUITES, RunSpec, get_suite

ISSUE_LOSSES = {
    "ce",
    "brier",
    "mmce_weighted",
    "label_smoothing",
    "focal",
    "flsd53",
    "inverse_focal",
    "adafocal",
    "dual_focal",
    "dual_flsd53",
}
RECENT_LOSSES = {"mbls", "mdca", "acls", "bsce_gra"}


def test_registry_names_and_unknown_suite() -> None:
    for name in ("ci", "smoke", "cpu-text", "cpu_text", "cpu-vision", "paper", "overconfident"):
        assert get_suite(name).name in {
            "ci", "cpu-text", "cpu-vision", "paper", "cpu-vision-overconfident"
        }  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown suite 'cifar'; expected one of: .*cpu_text"):
        get_suite("cifar")


@pytest.mark.parametrize("name", ["cpu-text", "cpu-vision", "cpu-vision-overconfident", "paper"])
def test_every_suite_has_the_papers_losses_then_the_recent_ones(name: str) -> None:
    suite = get_suite(name)
    keys = [loss.key for loss in suite.losses]
    assert set(keys[:10]) == ISSUE_LOSSES and set(keys[10:]) == RECENT_LOSSES
    assert [loss.key for loss in suite.losses if loss.tune_gamma] == ["dual_focal"]
    # every suite also searches MbLS's margin and MDCA's β on validation (when it searches)
    tuned = {loss.key: (loss.tune_option, loss.tune_grid) for loss in suite.losses if loss.tuned}
    assert tuned == {
        "dual_focal": ("gamma", None),
        "mbls": ("margin", (5.0, 10.0, 15.0)),
        "mdca": ("beta", (1.0, 5.0, 10.0)),
    }


def test_cpu_text_plan_builds_every_loss_with_the_issue_hyperparameters(tmp_path: Path) -> None:
    chosen = {("20ng", "dual_focal"): {"gamma": 4.0}, ("20ng", "mdca"): {"beta": 5.0}}
    specs = get_suite("cpu-text").plan(tmp_path, data_dir=tmp_path, tuned=chosen)
    assert len(specs) == 14 * 3
    assert len({s.run_dir for s in specs}) == 42
    by_key = {(s.loss_key, s.seed): s.train_config() for s in specs}
    assert {seed for _, seed in by_key} == {1, 2, 3}
    assert by_key["mmce_weighted", 1].loss_options == {"lam": 2.0, "convention": "official"}
    assert by_key["label_smoothing", 1].loss_options == {"eps": 0.05}
    assert by_key["focal", 2].gamma == 3.0
    assert by_key["dual_focal", 3].gamma == 4.0
    # the recent baselines at their papers' settings (MbLS with the official N·C divisor); a
    # searched option goes into loss_options, an unsearched one is the loss's default (m = 10)
    assert by_key["mbls", 1].loss_options == {"alpha": 0.1, "convention": "official"}
    assert build_loss(by_key["mbls", 1]).margin == 10.0
    assert by_key["mdca", 2].loss_options == {"beta": 5.0}
    assert by_key["bsce_gra", 3].loss_options == {"gamma": 1.0, "norm": 1.0}
    assert by_key["acls", 1].loss_options == {}
    for cfg in by_key.values():
        assert cfg.dataset == "npz" and cfg.model == "mlp" and cfg.preset == "cpu"
        # the packaged demo data is the fallback when the shared copy is absent
        assert cfg.data_root.endswith("20news-minilm-l6-f16.npz")
        module = build_loss(cfg)  # every loss is built exactly as `focalcal train` builds it
        assert module.reduction == "sum"
    mmce = build_loss(by_key["mmce_weighted", 1])
    assert mmce.lam == 2.0


def test_paper_suite_uses_the_dfl_table_and_paper_protocol(tmp_path: Path) -> None:
    suite = get_suite("paper")
    assert not suite.tune_gamma
    specs = suite.plan(tmp_path, data_dir=tmp_path)
    keys = {s.dataset_key for s in specs}
    assert len(keys) == 9 and "tiny_imagenet-resnet50" in keys
    cfg = next(
        s.train_config()
        for s in specs
        if s.dataset_key == "cifar10-resnet110" and s.loss_key == "dual_focal"
    )
    assert cfg.gamma == 4.5 and cfg.epochs == 350 and cfg.milestones == [150, 250]
    tiny = next(s.train_config() for s in specs if s.dataset_key.startswith("tiny"))
    assert (tiny.batch_size, tiny.epochs) == (64, 100)


def test_cpu_vision_is_declared_on_the_issue_data(tmp_path: Path) -> None:
    suite = get_suite("cpu-vision")
    (tmp_path / "cifar10-jpeg").mkdir()
    cifar = suite.select(datasets=["cifar10-jpeg"])
    specs = cifar.plan(tmp_path / "out", data_dir=tmp_path, seeds=1)
    cfg = specs[0].train_config()
    assert cfg.dataset == "imagefolder" and cfg.model in {"resnet8", "resnet20"}
    assert cfg.train_size == 15000 and cfg.epochs == 20  # sized for a few CPU hours
    assert cfg.data_root == str(tmp_path / "cifar10-jpeg")
    assert cfg.ood[0].startswith("tiny_imagenet:") and cfg.ood[1].startswith("npz:")
    assert {d.key for d in suite.datasets} == {"cifar10-jpeg", "fashion-mnist"}


def test_missing_data_and_bad_selection_raise_clearly(tmp_path: Path) -> None:
    suite = get_suite("cpu-vision").select(datasets=["cifar10-jpeg"])
    with pytest.raises(FileNotFoundError, match=r"cifar10-jpeg: data not found.*--data-dir"):
        suite.plan(tmp_path, data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"losses: unknown \['dfl'\]"):
        get_suite("ci").select(losses=["dfl"])
    with pytest.raises(ValueError, match=r"seeds: .*got 0"):
        get_suite("ci").plan(tmp_path, seeds=0)
    with pytest.raises(ValueError, match="unknown launcher 'cluster'"):
        reproduce("ci", tmp_path, launcher="cluster")
    with pytest.raises(ValueError, match="grid: expected finite γ > 0, got -1"):
        tune_gamma("ci", tmp_path, grid=[-1.0])
    with pytest.raises(ValueError, match="none of its losses is tuned"):
        tune_gamma(get_suite("ci").select(losses=["ce"]), tmp_path)


def test_cli_help_and_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for command in ("reproduce", "tune-gamma"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "--suite" in text and "--launcher" in text and "slurm" in text
    args = parser.parse_args(["reproduce", "--suite", "ci", "--seeds", "2", "--epochs", "1"])
    assert callable(args.handler) and args.seeds == 2 and args.epochs == 1
    assert main(["reproduce", "--suite", "nope"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err


def test_submitit_local_launcher_runs_one_job_per_run(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    # plain tuples and a builtin keep the child processes free of torch imports (fast)
    jobs = [(3, 1, 2), (2, 1)]
    results = _launch(jobs, sorted, "local", LaunchOptions(tmp_path / "jobs"))  # type: ignore[arg-type]
    assert results == [[1, 2, 3], [1, 2]]
    assert len(list((tmp_path / "jobs").glob("*/*_result.pkl"))) == 2  # one job each
    assert set(LAUNCHERS.names()) >= {"inline", "local", "slurm"}
    assert PAPER_LOSSES[0].key == "ce" and "paper" in SUITES.names()
    assert RunSpec("d", "l", 1, "x", {}).name == "d/l/seed1"


def test_overconfident_suite_declares_the_small_subset_and_three_seeds(tmp_path: Path) -> None:
    suite = get_suite("overconfident")
    assert suite.seeds == 3 and suite.gamma_grid == (2.0, 3.0, 5.0)
    assert suite.tune_epochs is None  # every γ candidate is trained on the full schedule
    (ds,) = suite.datasets
    assert ds.model == "resnet8" and ds.dataset == "imagefolder"
    assert ds.overrides == {
        "train_size": 2000, "epochs": 60, "milestones": [30, 45], "val_every": 5
    }  # fmt: skip
    (tmp_path / "cifar10-jpeg").mkdir()
    cfg = suite.base_config(ds, suite.losses[0], 2, data_dir=tmp_path, out_dir=tmp_path)
    assert (cfg.train_size, cfg.epochs, cfg.milestones, cfg.seed) == (2000, 60, [30, 45], 2)
    assert cfg.dataset_options == {"val_size": 5000} and len(cfg.ood) == 2


def test_plan_takes_the_older_gammas_spelling(tmp_path: Path) -> None:
    suite = get_suite("cpu-text").select(losses=["dual_focal", "mbls"])
    old = suite.plan(tmp_path, seeds=1, gammas={("20ng", "dual_focal"): 4.0})
    new = suite.plan(tmp_path, seeds=1, tuned={("20ng", "dual_focal"): {"gamma": 4.0}})
    assert old == new and old[0].config["gamma"] == 4.0
    both = suite.plan(
        tmp_path, seeds=1, gammas={("20ng", "dual_focal"): 4.0},
        tuned={("20ng", "dual_focal"): {"gamma": 2.0}, ("20ng", "mbls"): {"margin": 15.0}},
    )  # fmt: skip
    assert both[0].config["gamma"] == 2.0 and both[1].config["loss_options"]["margin"] == 15.0
