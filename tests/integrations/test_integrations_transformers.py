"""focalcal in a real transformers.Trainer: tiny models from configs, random init, CPU, no network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from focalcal import metrics  # noqa: E402
from focalcal.calibration import TemperatureScaling  # noqa: E402
from focalcal.integrations.transformers import (  # noqa: E402
    TemperatureScalingCallback,
    apply_temperature,
    calibration_loss_func,
    calibration_metrics,
    load_temperature,
)
from focalcal.losses import dual_focal_loss, focal_loss  # noqa: E402
from tiny_hf import tiny_gpt2  # noqa: E402


def _args(tmp_path, **kw) -> transformers.TrainingArguments:
    base = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        logging_strategy="no",
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        seed=0,
        dataloader_num_workers=0,
    )
    base.update(kw)
    return transformers.TrainingArguments(**base)


def _bert(num_labels: int = 3) -> transformers.BertForSequenceClassification:
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=num_labels,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def _sequence_data(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 40, (n, 8), generator=g)
    labels = ids[:, 0] % 3  # learnable from the first token
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]


def test_trainer_trains_dual_focal_reports_metrics_and_writes_temperature(tmp_path) -> None:
    model = _bert()
    callback = TemperatureScalingCallback()
    trainer = transformers.Trainer(
        model=model,
        args=_args(tmp_path, max_steps=6, per_device_train_batch_size=8, eval_strategy="steps",
                   eval_steps=6, per_device_eval_batch_size=16),
        train_dataset=_sequence_data(48),
        eval_dataset=_sequence_data(32, seed=1),
        compute_loss_func=calibration_loss_func("dual_focal", gamma=5.0),
        compute_metrics=calibration_metrics(n_bins=10),
        callbacks=[callback],
    )  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    result = trainer.evaluate()
    # the reported metrics are focalcal's on the same evaluation logits
    model.eval()
    data = _sequence_data(32, seed=1)
    with torch.no_grad():
        logits = model(input_ids=torch.stack([d["input_ids"] for d in data])).logits
    labels = torch.stack([d["labels"] for d in data])
    assert result["eval_ece"] == pytest.approx(float(metrics.ece(logits, labels, n_bins=10,
                                                                 from_logits=True)), abs=1e-6)  # fmt: skip
    assert result["eval_nll"] == pytest.approx(float(metrics.nll(logits, labels, from_logits=True)),
                                               abs=1e-5)  # fmt: skip
    for key in ("adaece", "classwise_ece", "brier", "error"):
        assert np.isfinite(result[f"eval_{key}"])
    # the callback fitted T on the evaluation split with the final model and wrote it
    record = json.loads((tmp_path / "temperature.json").read_text())
    expected = float(TemperatureScaling().fit(logits, labels).temperature_)
    assert record["temperature"] == pytest.approx(expected, rel=1e-5)
    assert record["num_items"] == 32
    assert load_temperature(tmp_path) == record["temperature"]
    assert torch.allclose(apply_temperature(logits, tmp_path), logits / expected, rtol=1e-5)


def _train_one_step(model, data, tmp_path, loss_func, batch: int, accumulation: int) -> dict:
    trainer = transformers.Trainer(
        model=model,
        args=_args(tmp_path, max_steps=1, per_device_train_batch_size=batch,
                   gradient_accumulation_steps=accumulation),
        train_dataset=data,
        compute_loss_func=loss_func,
    )  # fmt: skip
    trainer.train()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_gradient_accumulation_is_exact_for_sequence_classification(tmp_path) -> None:
    name = "dual_focal"
    data = _sequence_data(32)
    start = _bert().state_dict()
    one_batch = _train_one_step(_bert(), data, tmp_path, calibration_loss_func(name), 32, 1)
    accumulated = _train_one_step(_bert(), data, tmp_path, calibration_loss_func(name), 8, 4)
    assert _max_diff(one_batch, accumulated) < 1e-6
    assert _max_diff(one_batch, start) > 1e-3  # the step moved the parameters


def _lm_data(n: int = 32) -> list[dict[str, torch.Tensor]]:
    """Rows whose number of -100 labels grows with the row index: micro-batches differ."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 30, (n, 12), generator=g)
    rows = []
    for i in range(n):
        labels = ids[i].clone()
        labels[: (i * 11) // n] = -100  # 0 to 10 ignored positions (a prompt that is not trained)
        rows.append({"input_ids": ids[i], "labels": labels})
    return rows


@pytest.mark.parametrize("name", ["focal", "flsd53", "dual_focal"])
def test_gradient_accumulation_is_exact_for_a_causal_lm_with_uneven_ignored_tokens(
    tmp_path, name
) -> None:
    data = _lm_data()
    counts = [sum(int((d["labels"][1:] != -100).sum()) for d in data[k : k + 8]) for k in (0, 24)]
    assert counts[0] > 2 * counts[1]  # micro-batches hold very different numbers of tokens
    one_batch = _train_one_step(tiny_gpt2(), data, tmp_path, calibration_loss_func(name), 32, 1)
    accumulated = _train_one_step(tiny_gpt2(), data, tmp_path, calibration_loss_func(name), 8, 4)
    assert _max_diff(one_batch, accumulated) < 1e-6
    if name != "focal":
        return
    # a per-micro-batch mean (the bug of transformers #34263) would not give the same step
    mean_loss = calibration_loss_func(name)
    naive = _train_one_step(
        tiny_gpt2(), data, tmp_path, lambda o, y, num_items_in_batch=None: mean_loss(o, y) / 4, 8, 4
    )
    assert _max_diff(one_batch, naive) > 1e-4


def test_causal_lm_loss_equals_a_hand_computation_on_shifted_labels() -> None:
    model = tiny_gpt2()
    data = _lm_data(4)
    ids = torch.stack([d["input_ids"] for d in data])
    labels = torch.stack([d["labels"] for d in data])
    outputs = model(input_ids=ids)
    logits = outputs.logits
    # explicit shift: position t predicts token t + 1, the last position nothing
    shifted_logits = logits[:, :-1].reshape(-1, 30)
    shifted_labels = labels[:, 1:].reshape(-1)
    keep = shifted_labels != -100
    num_items = int(keep.sum())
    expected = focal_loss(shifted_logits[keep], shifted_labels[keep], 2.0, reduction="sum")
    got = calibration_loss_func("focal", gamma=2.0)(outputs, labels, num_items_in_batch=num_items)
    assert torch.allclose(got, expected / num_items, rtol=1e-6, atol=1e-7)
    # without num_items_in_batch: the mean over counted tokens; with γ = 0 the model's own loss
    own = model(input_ids=ids, labels=labels).loss
    ce = calibration_loss_func("focal", gamma=0.0)(outputs, labels)
    assert torch.allclose(ce, own, rtol=1e-6)
    token_mean = dual_focal_loss(shifted_logits[keep], shifted_labels[keep], 5.0)
    dual = calibration_loss_func("dual_focal", task="causal_lm")(logits, labels)
    assert torch.allclose(dual, token_mean, rtol=1e-6)


def test_token_classification_uses_unshifted_labels() -> None:
    config = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, num_labels=4)  # fmt: skip
    model = transformers.BertForTokenClassification(config)
    ids = torch.randint(0, 40, (2, 6))
    labels = torch.randint(0, 4, (2, 6))
    labels[0, :2] = -100
    outputs = model(input_ids=ids)
    got = calibration_loss_func("focal", gamma=0.0)(outputs, labels)
    assert torch.allclose(got, F.cross_entropy(outputs.logits.reshape(-1, 4), labels.reshape(-1)))


def test_all_ignored_causal_lm_batch_gives_zero_loss_and_zero_gradient() -> None:
    logits = torch.randn(2, 5, 7, requires_grad=True)
    labels = torch.full((2, 5), -100)
    for num_items in (None, 0, torch.tensor(0)):
        loss = calibration_loss_func("dual_focal", task="causal_lm")(
            logits, labels, num_items_in_batch=num_items
        )
        (grad,) = torch.autograd.grad(loss, logits)
        assert loss.item() == 0.0
        assert torch.count_nonzero(grad) == 0


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda f: f(torch.randn(4, 3), torch.tensor([0, 1])), ValueError, r"labels: expected shape \(4,\)"),
        (lambda f: f(torch.randn(2, 5, 3), torch.zeros(2, 4, dtype=torch.long)), ValueError, "task: logits of shape"),
        (lambda f: f(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 0), ValueError, "num_items_in_batch: expected the number"),
        (lambda f: f(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 2.5), TypeError, "num_items_in_batch: expected an int"),
        (lambda f: f(torch.randn(4, 3), None), ValueError, "labels: expected the batch's labels"),
        (lambda f: f(torch.randn(4, 3), torch.full((4, 3), 0.5)), ValueError, "target: expected probabilities"),
    ],
)  # fmt: skip
def test_bad_input_raises_a_clear_error(call, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        call(calibration_loss_func("dual_focal"))


def test_bad_arguments_raise_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="task: expected one of"):
        calibration_loss_func("focal", task="lm")
    with pytest.raises(TypeError, match="ignore_index: fixed at -100"):
        calibration_loss_func("focal", ignore_index=0)
    with pytest.raises(ValueError, match=r"labels: expected shape \(2, 3\) \(B, T\)"):
        calibration_loss_func("focal", task="causal_lm")(torch.randn(2, 3, 4), torch.zeros(2, 2))
    with pytest.raises(FileNotFoundError, match=r"temperature\.json"):
        load_temperature(tmp_path)


def test_soft_sequence_labels_go_to_the_soft_target_loss() -> None:
    logits = torch.randn(4, 3)
    q = torch.softmax(torch.randn(4, 3), dim=1)
    got = calibration_loss_func("focal", gamma=0.0)(logits, q, num_items_in_batch=4)
    assert torch.allclose(got, F.cross_entropy(logits, q, reduction="sum") / 4)
