r"""focalcal in the Hugging Face ``Trainer`` and TRL: loss, metrics and temperature scaling.

- :func:`calibration_loss_func` gives ``Trainer(compute_loss_func=...)`` (and TRL's trainers,
  which take the same argument) any focalcal loss, normalised as the models' own loss so that
  gradient accumulation is exact.
- :func:`calibration_metrics` / :data:`compute_metrics` give ``Trainer(compute_metrics=...)`` ECE,
  AdaECE, Classwise-ECE, NLL, Brier and error.
- :class:`TemperatureScalingCallback` fits a temperature on the evaluation split when training
  ends and writes ``temperature.json`` beside the model; :func:`apply_temperature` uses it.

**Head type.** The loss and the metrics see logits and labels and tell the head from their
shapes: 2-D logits (B, C) are a sequence-classification head (labels (B,) integer, or (B, C)
probabilities for soft targets). 3-D logits (B, T, C) with labels (B, T) are either token
classification (position t predicts label t) or a causal LM (position t predicts token t + 1);
the shapes cannot tell them apart, so the model's output class decides (``*CausalLM*`` output
→ causal LM, ``TokenClassifierOutput`` → token classification), and otherwise ``task=`` must be
given. Causal-LM labels are shifted exactly as transformers' ``ForCausalLMLoss``: padded with
``-100`` on the right, then ``labels[:, 1:]``, so the last position predicts nothing. Items
labelled ``-100`` are ignored everywhere.

**Normalisation.** As the models' own loss: the sum over the counted items divided by
``num_items_in_batch`` when the Trainer gives it (the number of counted labels in the whole
accumulated batch, so N micro-batches give the gradient of one batch), else the mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from focalcal._io import atomic_write_text
from focalcal._optional import require
from focalcal._validation import _describe, check_choice, check_n_bins
from focalcal.integrations._common import fit_temperature
from focalcal.losses import get_loss
from focalcal.metrics import CalibrationMetrics

transformers = require("transformers", "transformers")

__all__ = [
    "TASKS",
    "CalibrationLoss",
    "TemperatureScalingCallback",
    "apply_temperature",
    "calibration_loss_func",
    "calibration_metrics",
    "compute_metrics",
    "infer_task",
    "load_temperature",
    "task_items",
]

TASKS = ("sequence_classification", "token_classification", "causal_lm")
IGNORE_INDEX = -100
TEMPERATURE_FILE = "temperature.json"


def infer_task(logits: Tensor, outputs: Any = None, task: str | None = None) -> str:
    """The head type from the logits' rank and the model's output class (module docstring)."""
    if task is not None:
        return check_choice(task, "task", TASKS)
    if logits.ndim == 2:
        return "sequence_classification"
    if logits.ndim == 3:
        name = type(outputs).__name__
        if "CausalLM" in name:
            return "causal_lm"
        if name.startswith("TokenClassifierOutput"):
            return "token_classification"
        raise ValueError(
            f"task: logits of shape {tuple(logits.shape)} (B, T, C) come from a token-"
            f"classification head or a causal LM, and the output {name} does not say which; pass "
            f"task='token_classification' or task='causal_lm'"
        )
    raise ValueError(
        f"logits: expected (B, C) or (B, T, C) logits, got shape {tuple(logits.shape)}"
    )


def task_items(logits: Tensor, labels: Tensor, task: str) -> tuple[Tensor, Tensor]:
    """Logits (M, C) and targets of the items the loss counts, for the head type ``task``.

    Causal-LM labels are shifted as ``ForCausalLMLoss`` shifts them (see the module docstring).
    Targets are (M,) labels (``-100`` kept), or (M, C) probabilities for soft sequence labels.
    """
    batch = logits.shape[0]
    labels = labels.to(logits.device)
    if task == "sequence_classification":
        if logits.ndim != 2 or labels.shape not in ((batch,), tuple(logits.shape)):
            raise ValueError(
                f"labels: expected shape ({batch},) (class indices) or {tuple(logits.shape)} "
                f"(probabilities) for a sequence-classification head with logits "
                f"{tuple(logits.shape)}, got {tuple(labels.shape)}"
            )
        return logits, labels
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels: expected shape {tuple(logits.shape[:2])} (B, T) for a {task} head with "
            f"logits {tuple(logits.shape)} (B, T, C), got {tuple(labels.shape)}"
        )
    if task == "causal_lm":
        padded = nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)
        labels = padded[..., 1:]
    return logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)


def _has_counted_items(targets: Tensor) -> bool:
    return targets.is_floating_point() or bool((targets != IGNORE_INDEX).any())


def _num_items(num_items_in_batch: Any, targets: Tensor) -> Tensor | int | None:
    """``num_items_in_batch`` checked: None, a positive int, or a positive 1-element tensor.

    0 is accepted only when the batch itself has nothing to count (then the loss is 0).
    """
    if num_items_in_batch is None:
        return None
    if isinstance(num_items_in_batch, Tensor):
        if num_items_in_batch.numel() != 1:
            raise ValueError(
                f"num_items_in_batch: expected an int or a 0-d tensor, got "
                f"{_describe(num_items_in_batch)}"
            )
        value = float(num_items_in_batch)
    elif isinstance(num_items_in_batch, int) and not isinstance(num_items_in_batch, bool):
        value = float(num_items_in_batch)
    else:
        raise TypeError(
            f"num_items_in_batch: expected an int or a 0-d tensor, got "
            f"{_describe(num_items_in_batch)}"
        )
    if value < 0 or (value == 0 and _has_counted_items(targets)):
        raise ValueError(
            f"num_items_in_batch: expected the number of counted labels in the accumulated "
            f"batch (> 0), got {value:g} while this batch has labels to count; it is the "
            f"count of labels != -100, which the Trainer computes"
        )
    return num_items_in_batch if value > 0 else None


def _logits_of(outputs: Any) -> Tensor:
    if isinstance(outputs, Mapping):
        if "logits" not in outputs:
            raise ValueError(f"outputs: expected a 'logits' entry, got keys {list(outputs)}")
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)):
        return outputs[0]
    if isinstance(outputs, Tensor):
        return outputs
    return outputs.logits


class CalibrationLoss:
    """``compute_loss_func(outputs, labels, num_items_in_batch=None)`` around a focalcal loss.

    Built by :func:`calibration_loss_func`; ``loss`` is the loss module (e.g. to call
    ``AdaFocalLoss.update`` or ``set_epoch``), ``task`` the fixed head type or None.
    """

    def __init__(self, loss: nn.Module, task: str | None = None) -> None:
        if not hasattr(loss, "reduction"):
            raise TypeError(
                f"loss: expected a focalcal loss module with a 'reduction', got {_describe(loss)}"
            )
        self.loss = loss
        self.task = None if task is None else check_choice(task, "task", TASKS)

    def __call__(
        self, outputs: Any, labels: Tensor | None, num_items_in_batch: Any = None
    ) -> Tensor:
        if labels is None:
            raise ValueError(
                "labels: expected the batch's labels, got None (the dataset has no 'labels' "
                "column, or TrainingArguments(label_names=...) names another)"
            )
        logits = _logits_of(outputs)
        task = infer_task(logits, outputs, self.task)
        logits, targets = task_items(logits, labels, task)
        num_items = _num_items(num_items_in_batch, targets)
        self.loss.reduction = "mean" if num_items_in_batch is None else "sum"
        value = self.loss(logits, targets)
        if num_items is None:
            return value
        if isinstance(num_items, Tensor):
            num_items = num_items.to(value.device).reshape(())
        return value / num_items

    def __repr__(self) -> str:
        return f"CalibrationLoss({self.loss!r}, task={self.task!r})"


def calibration_loss_func(
    name: str | nn.Module, *, task: str | None = None, **loss_kwargs: Any
) -> CalibrationLoss:
    r"""A ``compute_loss_func`` for ``transformers.Trainer`` and TRL with a focalcal loss.

    Args:
        name: a loss name of :func:`focalcal.losses.get_loss` (``"dual_focal"``, ``"flsd53"``,
            ``"focal"``, ``"adafocal"``, ...) or a focalcal loss module.
        task: ``"sequence_classification"``, ``"token_classification"`` or ``"causal_lm"``;
            None infers it (see the module docstring).
        loss_kwargs: passed to the loss (``gamma``, ``weight``, ``label_smoothing``,
            ``validate``, ...). ``ignore_index`` is always −100, the transformers convention.

    Returns:
        ``loss(outputs, labels, num_items_in_batch=None)``:
        :math:`\sum_i \ell_i / \text{num\_items\_in\_batch}` when it is given, else the mean.

    Example:
        >>> import torch
        >>> loss_func = calibration_loss_func("dual_focal", gamma=5.0)
        >>> logits = torch.randn(4, 3, requires_grad=True)
        >>> loss = loss_func({"logits": logits}, torch.tensor([0, 2, 1, 0]), num_items_in_batch=8)
        >>> loss.backward()  # the sum over these 4 items / 8
    """
    if "ignore_index" in loss_kwargs:
        raise TypeError("ignore_index: fixed at -100 (the transformers convention); remove it")
    if "reduction" in loss_kwargs:
        raise TypeError("reduction: set from num_items_in_batch (sum / count, or mean); remove it")
    if isinstance(name, nn.Module):
        if loss_kwargs:
            raise TypeError(
                f"loss_kwargs: a loss module takes no options, got {sorted(loss_kwargs)}"
            )
        loss = name
    else:
        loss = get_loss(name, ignore_index=IGNORE_INDEX, **loss_kwargs)
    return CalibrationLoss(loss, task)


def _gather_eval(predictions: Any, label_ids: Any, task: str | None) -> tuple[Tensor, Tensor]:
    """(M, C) logits and (M,) labels of an ``EvalPrediction``, ``-100`` items dropped."""
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    logits = torch.as_tensor(predictions)
    labels = torch.as_tensor(label_ids)
    logits, targets = task_items(logits, labels, infer_task(logits, None, task))
    if targets.is_floating_point():
        raise ValueError(
            "label_ids: calibration metrics need integer class labels, got probabilities"
        )
    keep = targets != IGNORE_INDEX
    return logits[keep].float(), targets[keep].long()


def calibration_metrics(
    *, task: str | None = None, n_bins: int = 15
) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for ``Trainer``: ``ece, adaece, classwise_ece, nll, brier, error``.

    Each is the focalcal metric (:mod:`focalcal.metrics`) of the evaluation logits, labels
    ``-100`` left out; causal-LM labels are shifted as for the loss. 3-D logits need ``task``.

    Example:
        >>> import numpy as np
        >>> from transformers import EvalPrediction
        >>> metrics = calibration_metrics(n_bins=10)
        >>> out = metrics(EvalPrediction(np.random.randn(16, 3), np.random.randint(0, 3, 16)))
        >>> sorted(out)
        ['adaece', 'brier', 'classwise_ece', 'ece', 'error', 'nll']
    """
    n_bins = check_n_bins(n_bins)
    if task is not None:
        check_choice(task, "task", TASKS)

    def compute(eval_pred: Any) -> dict[str, float]:
        logits, labels = _gather_eval(eval_pred.predictions, eval_pred.label_ids, task)
        metric = CalibrationMetrics(n_bins, from_logits=True, smooth=False)
        metric.update(logits, labels)
        values = metric.compute()
        keys = ("ece", "adaece", "classwise_ece", "nll", "brier", "error")
        return {key: float(values[key]) for key in keys}

    return compute


#: ``calibration_metrics()`` for sequence-classification heads, 15 bins.
compute_metrics = calibration_metrics()


class TemperatureScalingCallback(transformers.TrainerCallback):
    """Fit T on the evaluation split when training ends; write ``temperature.json``.

    At ``on_train_end`` the model runs (eval mode, no gradient) over the evaluation dataloader,
    or over ``dataloader`` when given; the logits of the counted items (head type as for the
    loss) fit :class:`~focalcal.calibration.TemperatureScaling` (exact NLL minimiser), and
    ``{"temperature": T, "num_items": M, "task": ...}`` is written atomically to
    ``<output_dir>/temperature.json`` (by the main process). ``temperature_`` holds T.

    Args:
        task: the head type, or None to infer it (see the module docstring).
        dataloader: batches (dicts with ``labels``) to fit on; default: the Trainer's
            evaluation dataloader (which exists once the Trainer has evaluated).
    """

    def __init__(self, *, task: str | None = None, dataloader: Iterable | None = None) -> None:
        self.task = None if task is None else check_choice(task, "task", TASKS)
        self.dataloader = dataloader
        self.temperature_: float | None = None

    @torch.no_grad()
    def _collect(self, model: nn.Module, batches: Iterable) -> tuple[Tensor, Tensor]:
        device = next(model.parameters()).device
        all_logits, all_labels = [], []
        for batch in batches:
            inputs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = _logits_of(outputs)
            items, targets = task_items(logits, labels, infer_task(logits, outputs, self.task))
            keep = targets != IGNORE_INDEX
            all_logits.append(items[keep].float().cpu())
            all_labels.append(targets[keep].cpu())
        return torch.cat(all_logits), torch.cat(all_labels)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        batches = self.dataloader or kwargs.get("eval_dataloader")
        if batches is None:
            raise ValueError(
                "TemperatureScalingCallback: no evaluation dataloader to fit on; give the Trainer "
                "an eval_dataset and an eval_strategy, or pass dataloader= to the callback"
            )
        self.temperature_, num_items = fit_temperature(model, lambda: self._collect(model, batches))
        if state.is_world_process_zero:
            record = {"temperature": self.temperature_, "num_items": num_items}
            record["task"] = self.task
            atomic_write_text(
                Path(args.output_dir) / TEMPERATURE_FILE, json.dumps(record, indent=2)
            )


def load_temperature(directory: str | Path) -> float:
    """T from ``<directory>/temperature.json`` written by :class:`TemperatureScalingCallback`."""
    path = Path(directory) / TEMPERATURE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no temperature file; train with TemperatureScalingCallback, which writes it "
            f"to the Trainer's output_dir"
        )
    try:
        temperature = float(json.loads(path.read_text())["temperature"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: expected JSON with a numeric 'temperature', got {err}") from err
    if not temperature > 0:
        raise ValueError(f"{path}: expected a temperature > 0, got {temperature}")
    return temperature


def apply_temperature(logits: Tensor, temperature: float | str | Path) -> Tensor:
    """Calibrated logits ``logits / T``; ``temperature`` is T or a directory with
    ``temperature.json``. Softmax them for calibrated probabilities.

    Example:
        >>> apply_temperature(torch.tensor([[2.0, 0.0]]), 2.0)
        tensor([[1., 0.]])
    """
    if isinstance(temperature, (str, Path)):
        temperature = load_temperature(temperature)
    return logits / temperature
