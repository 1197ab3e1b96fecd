"""The Lightning callbacks in a real lightning.Trainer on a user-style LightningModule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning")

from focalcal import metrics  # noqa: E402
from focalcal.calibration import TemperatureScaling  # noqa: E402
from focalcal.integrations.lightning import (  # noqa: E402
    CalibrationMetricsCallback,
    TemperatureScalingCallback,
    checkpoint_temperature,
)
from focalcal.losses import DualFocalLoss  # noqa: E402


class UserModule(L.LightningModule):
    """What a user writes: a model, a loss, (x, y) batches; nothing focalcal-specific."""

    def __init__(self, return_logits: bool = False) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
        )
        self.criterion = DualFocalLoss(gamma=3.0)
        self.return_logits = return_logits

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.criterion(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("val_loss", loss)
        return {"loss": loss, "logits": logits, "labels": y} if self.return_logits else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _loaders() -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=g) * 2

    def split(n):
        y = torch.randint(0, 4, (n,), generator=g)
        return TensorDataset(centres[y] + torch.randn(n, 6, generator=g), y)

    return DataLoader(split(128), batch_size=32), DataLoader(split(96), batch_size=32)


def _trainer(tmp_path, callbacks) -> L.Trainer:
    return L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, default_root_dir=str(tmp_path),
    )  # fmt: skip


def _val_outputs(module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    module.eval()
    with torch.no_grad():
        pairs = [(module(x), y) for x, y in loader]
    return torch.cat([z for z, _ in pairs]), torch.cat([y for _, y in pairs])


@pytest.mark.parametrize("return_logits", [False, True])
def test_logged_calibration_metrics_equal_focalcal_metrics(tmp_path, return_logits) -> None:
    torch.manual_seed(0)
    module = UserModule(return_logits)
    train, val = _loaders()
    trainer = _trainer(tmp_path, [CalibrationMetricsCallback(n_bins=10)])
    trainer.fit(module, train, val)
    logits, labels = _val_outputs(module, val)
    logged = trainer.callback_metrics
    expected = {
        "cal/ECE": metrics.ece(logits, labels, n_bins=10, from_logits=True),
        "cal/AdaECE": metrics.adaece(logits, labels, n_bins=10, from_logits=True),
        "cal/CW-ECE": metrics.classwise_ece(logits, labels, n_bins=10, from_logits=True),
        "cal/NLL": metrics.nll(logits, labels, from_logits=True),
    }
    for name, value in expected.items():
        assert float(logged[name]) == pytest.approx(float(value), abs=1e-6), name


def test_temperature_is_fitted_on_the_validation_loader_and_stored_in_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    module = UserModule()
    train, val = _loaders()
    ckpt = tmp_path / "calibrated.ckpt"
    callback = TemperatureScalingCallback(ckpt)
    trainer = _trainer(tmp_path, [callback])
    trainer.fit(module, train, val)
    logits, labels = _val_outputs(module, val)
    expected = float(TemperatureScaling().fit(logits, labels).temperature_)
    assert callback.temperature_ == pytest.approx(expected, rel=1e-6)
    assert module.temperature == callback.temperature_
    assert checkpoint_temperature(ckpt) == callback.temperature_
    # a fresh callback restores T from the checkpoint's callback state
    state = torch.load(ckpt, weights_only=False)["callbacks"]
    restored = TemperatureScalingCallback()
    restored.load_state_dict(next(iter(state.values())))
    assert restored.temperature_ == callback.temperature_


def test_clear_errors(tmp_path) -> None:
    torch.manual_seed(0)
    trainer = _trainer(tmp_path, [TemperatureScalingCallback()])
    train, _ = _loaders()
    with pytest.raises(ValueError, match="no validation loader"):
        trainer.fit(UserModule(), train)
    path = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(ValueError, match="holds no temperature"):
        checkpoint_temperature(path)
