"""The LightningModule's protocol: loss hooks, AdaFocal's validation update, clipping, schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from focalcal.data import InMemoryLoader, make_batch_transform
from focalcal.losses import FocalLoss, ScheduledGamma, get_loss
from focalcal.training.config import make_config
from focalcal.training.demo import DEMO_DATA
from focalcal.training.module import CalibrationModule, epoch_seed
from focalcal.training.predict import predict_logits
from focalcal.training.run import build_loss, build_model, load_splits, train
from focalcal.training.trainer import make_trainer
from loss_contract import CONTRACT_LOSSES

L = pytest.importorskip("lightning")


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    """Real 20 Newsgroups embeddings: 5 classes, 30 train + 10 test documents each."""
    with np.load(DEMO_DATA) as d:
        tr = np.concatenate([np.flatnonzero(d["y_train"] == c)[:30] for c in range(5)])
        te = np.concatenate([np.flatnonzero(d["y_test"] == c)[:10] for c in range(5)])
        path = tmp_path_factory.mktemp("small") / "news5.npz"
        np.savez(
            path, x_train=d["x_train"][tr], y_train=d["y_train"][tr], x_test=d["x_test"][te],
            y_test=d["y_test"][te], class_names=d["class_names"][:5],
        )  # fmt: skip
    return path


def _config(path: Path, loss: str, **overrides):
    values = {
        "data_root": str(path), "model_options": {"hidden": 16}, "epochs": 3, "milestones": [1, 2],
        "batch_size": 32, "deterministic": True,
    } | overrides  # fmt: skip
    return make_config("npz", "mlp", loss, preset="cpu", **values)


class _Recorder(L.Callback):
    """Observes the run (not a stand-in for anything): γ, lr and the clipped gradient norm."""

    def __init__(self) -> None:
        self.gammas: list[float] = []
        self.lrs: list[float] = []
        self.grad_norms: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.gammas.append(pl_module.criterion.gamma.gamma)
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # after the step: the gradients the optimiser used (clipped), not yet zeroed
        grads = [p.grad.flatten() for p in pl_module.parameters() if p.grad is not None]
        self.grad_norms.append(float(torch.cat(grads).norm()))


def test_set_epoch_schedule_lr_milestones_and_clipping(tmp_path, small_npz):
    config = _config(small_npz, "ce")
    splits = load_splits(config)
    criterion = FocalLoss(gamma=ScheduledGamma({0: 0.0, 1: 2.0, 2: 5.0}), reduction="sum")
    module = CalibrationModule(
        build_model(config, splits.train), criterion, config,
        val_inputs=splits.val.inputs, val_targets=splits.val.targets,
        eval_transform=make_batch_transform(splits.val, train=False),
        train_loader=lambda trainer: InMemoryLoader(splits.train, batch_size=32, shuffle=True),
    )  # fmt: skip
    trainer = make_trainer(config, tmp_path, checkpoint=tmp_path / "last.ckpt", progress=False)
    recorder = _Recorder()
    trainer.callbacks.append(recorder)
    trainer.fit(module)
    steps = len(recorder.gammas) // 3
    assert recorder.gammas == [0.0] * steps + [2.0] * steps + [5.0] * steps  # set_epoch(e)
    np.testing.assert_allclose(recorder.lrs, [0.1] * steps + [0.01] * steps + [0.001] * steps)
    # The paper preset clips the global gradient norm at 2 before every step: the summed loss
    # gives far larger raw norms, so every recorded norm sits at the clip value.
    assert trainer.gradient_clip_val == 2.0 and trainer.gradient_clip_algorithm == "norm"
    assert max(recorder.grad_norms) <= 2.0 + 1e-4
    assert np.median(recorder.grad_norms) > 1.99
    logged = trainer.logged_metrics
    assert {"train_loss", "train_acc", "val_error", "val_nll", "val_ece"} <= set(logged)


def test_adafocal_update_uses_the_validation_split_after_every_epoch(tmp_path, small_npz):
    config = _config(small_npz, "adafocal", epochs=1)
    run = tmp_path / "run"
    train(config, run, progress=False)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    state = ckpt["state_dict"]
    # Recompute what the update must have seen: the epoch-0 model on the whole validation split.
    splits = load_splits(config)
    model = build_model(config, splits.train)
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    logits = predict_logits(
        model, splits.val.inputs, transform=make_batch_transform(splits.val, False)
    )
    expected = get_loss("adafocal", reduction="sum")
    before = {k: v.clone() for k, v in expected.state_dict().items()}
    expected.update(logits.softmax(1), splits.val.targets)
    for key, value in expected.state_dict().items():
        torch.testing.assert_close(state[f"criterion.{key}"], value, rtol=0, atol=0)
    assert any(not torch.equal(before[k], v) for k, v in expected.state_dict().items())


def test_train_size_trains_on_a_stratified_subset_shared_by_every_run(small_npz):
    full = load_splits(_config(small_npz, "ce"), with_ood=False).train
    config = _config(small_npz, "ce", train_size=20)
    splits = load_splits(config, with_ood=False)
    assert len(splits.train) == 20
    # each of the 5 classes keeps its share (27 training documents each after the carve)
    assert torch.bincount(splits.train.targets, minlength=5).tolist() == [4] * 5
    # a subset of the training split (not of validation/test), the same for any loss and seed
    assert set(splits.train.source_indices.tolist()) <= set(full.source_indices.tolist())
    other = load_splits(_config(small_npz, "dual_focal", train_size=20, seed=7), with_ood=False)
    assert torch.equal(other.train.source_indices, splits.train.source_indices)
    assert len(splits.val) == len(load_splits(_config(small_npz, "ce"), with_ood=False).val)
    with pytest.raises(ValueError, match="train_size"):
        _config(small_npz, "ce", train_size=0)
    too_many = _config(small_npz, "ce", train_size=1000)
    with pytest.raises(ValueError, match=r"train_size: expected at most the \d+ available"):
        load_splits(too_many, with_ood=False)


def test_build_loss_uses_the_preset_reduction_and_gamma(small_npz):
    loss = build_loss(_config(small_npz, "dual_focal", gamma=4.0))
    assert loss.reduction == "sum"
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    torch.testing.assert_close(
        loss(logits, target), get_loss("dual_focal", gamma=4.0, reduction="sum")(logits, target)
    )
    with pytest.raises(ValueError, match="unknown loss 'dual_focl'; expected one of"):
        build_loss(_config(small_npz, "dual_focl"))


def test_epoch_seed_is_distinct_and_stable():
    seeds = {epoch_seed(s, e, r) for s in range(3) for e in range(50) for r in range(4)}
    assert len(seeds) == 3 * 50 * 4
    assert epoch_seed(1, 7, 0) == epoch_seed(1, 7, 0)


@pytest.mark.parametrize("loss", CONTRACT_LOSSES)
def test_every_registry_loss_builds_with_the_paper_preset(small_npz, loss):
    criterion = build_loss(_config(small_npz, loss))
    logits = torch.randn(8, 5, requires_grad=True)
    value = criterion(logits, torch.arange(8) % 5)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(value) and torch.isfinite(logits.grad).all()


def _validated_epochs(run: Path) -> list[int]:
    import csv

    with open(run / "logs" / "metrics.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle) if row.get("val_ece")]


def test_val_every_scores_the_validation_split_less_often_with_the_same_result(tmp_path, small_npz):
    every = _config(small_npz, "ce", epochs=5, val_every=2)
    always = _config(small_npz, "ce", epochs=5)
    train(every, tmp_path / "every", progress=False)
    train(always, tmp_path / "always", progress=False)
    # epochs 2 and 4 (0-based 1, 3), and the last epoch whatever the period
    assert _validated_epochs(tmp_path / "every") == [1, 3, 4]
    assert _validated_epochs(tmp_path / "always") == [0, 1, 2, 3, 4]
    with (
        np.load(tmp_path / "every" / "logits.npz") as a,
        np.load(tmp_path / "always" / "logits.npz") as b,
    ):
        np.testing.assert_array_equal(a["test_logits"], b["test_logits"])  # scoring is read-only


def test_a_loss_that_learns_from_validation_is_scored_every_epoch(tmp_path, small_npz):
    train(_config(small_npz, "adafocal", epochs=3, val_every=10), tmp_path / "r", progress=False)
    assert _validated_epochs(tmp_path / "r") == [0, 1, 2]


def test_val_every_must_be_a_positive_integer(small_npz):
    with pytest.raises(ValueError, match=r"val_every: expected an integer >= 1, got 0"):
        _config(small_npz, "ce", val_every=0)
