"""The fused calibration loss on real Hugging Face causal LMs (random init, no download): the
model's own loss, the materialised focalcal loss, Trainer with gradient accumulation, memory."""

from __future__ import annotations

import copy
import doctest

import pytest
import torch

transformers = pytest.importorskip("transformers")

from torch._C._profiler import _EventType  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainingArguments,
)

from focalcal.integrations.transformers_fused import (  # noqa: E402
    disable_fused_calibration_loss,
    enable_fused_calibration_loss,
)
from focalcal.losses import dual_focal_loss  # noqa: E402

VOCAB = 61


def _llama(vocab: int = VOCAB, hidden: int = 16) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=0,
        eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def _batch(vocab: int = VOCAB, batch: int = 3, length: int = 9):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (batch, length), generator=g)
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt
    labels[1, -2:] = -100  # padding
    return ids, labels


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(a: dict, b: dict, rtol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        scale = float(b[name].abs().max())
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=rtol * scale, msg=name)


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_fused_ce_equals_the_models_own_loss(build):
    ids, labels = _batch()
    reference = build().train()
    own = reference(input_ids=ids, labels=labels).loss  # transformers' ForCausalLMLoss
    own.backward()
    model = enable_fused_calibration_loss(build().train(), "ce", chunk_size=5)
    out = model(input_ids=ids, labels=labels)
    assert out.logits is None
    torch.testing.assert_close(out.loss, own.detach(), rtol=1e-5, atol=0)
    out.loss.backward()
    _assert_same_grads(_grads(model), _grads(reference))


@pytest.mark.parametrize("build", [_llama, _gpt2], ids=["llama", "gpt2"])
def test_fused_dual_focal_equals_the_materialised_loss(build):
    ids, labels = _batch()
    reference = build().train()
    logits = reference(input_ids=ids).logits
    # position t predicts token t + 1
    unfused = dual_focal_loss(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
    unfused.backward()
    model = enable_fused_calibration_loss(build().train(), "dual_focal", chunk_size=4)
    fused = model(input_ids=ids, labels=labels).loss
    torch.testing.assert_close(fused, unfused.detach(), rtol=1e-5, atol=0)
    fused.backward()
    _assert_same_grads(_grads(model), _grads(reference))
    # Hugging Face's normalisation: the sum over num_items_in_batch
    summed = dual_focal_loss(
        logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), reduction="sum"
    )
    hf = model(input_ids=ids, labels=labels, num_items_in_batch=torch.tensor(50)).loss
    torch.testing.assert_close(hf, summed.detach() / 50, rtol=1e-5, atol=0)


def test_evaluation_and_generation_are_unaffected():
    ids, labels = _batch()
    reference = _llama().eval()
    model = enable_fused_calibration_loss(_llama(), "dual_focal").eval()
    with torch.no_grad():
        expected, got = reference(input_ids=ids, labels=labels), model(input_ids=ids, labels=labels)
    torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=0)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)  # the model's own CE
    generate = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(model.generate(ids[:1], **generate), reference.generate(ids[:1], **generate))
    model.train()
    assert model(input_ids=ids).logits.shape == (3, 9, VOCAB)  # no labels: logits as usual
    disable_fused_calibration_loss(model)
    assert model(input_ids=ids, labels=labels).logits is not None
    assert "calibration_loss" not in dict(model.named_children())


class _Rows(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def _train(model, dataset, tmp_path, batch_size: int, accumulation: int, steps: int = 1):
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, max_steps=steps, learning_rate=0.5,
        optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=0,
        dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    assert trainer.model_accepts_loss_kwargs  # so num_items_in_batch reaches the loss
    trainer.train()
    return model


def test_trainer_gradient_accumulation_equals_one_big_batch(tmp_path):
    ids, labels = _batch(batch=4)
    labels[2, :6] = -100  # micro-batches with different token counts
    dataset = _Rows(ids, labels)
    start = enable_fused_calibration_loss(_llama(), "dual_focal", chunk_size=6)
    big = _train(copy.deepcopy(start), dataset, tmp_path / "big", batch_size=4, accumulation=1)
    accumulated = _train(copy.deepcopy(start), dataset, tmp_path / "acc", 2, accumulation=2)
    moved = 0.0
    for (name, p), q, p0 in zip(
        big.named_parameters(), accumulated.parameters(), start.parameters(), strict=True
    ):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, float((p - p0).detach().abs().max()))
    assert moved > 1e-3  # the step did change the weights


def test_trainer_trains_a_few_steps_with_the_fused_loss(tmp_path):
    ids, labels = _batch(batch=8)
    model = enable_fused_calibration_loss(_llama(), "dual_focal", gamma=5.0)
    with torch.no_grad():
        before = model.eval()(input_ids=ids).logits
    _train(model.train(), _Rows(ids, labels), tmp_path, batch_size=4, accumulation=1, steps=6)
    with torch.no_grad():
        after = model.eval()(input_ids=ids).logits
    target = labels[:, 1:].reshape(-1)
    loss_before = dual_focal_loss(before[:, :-1].reshape(-1, VOCAB), target)
    loss_after = dual_focal_loss(after[:, :-1].reshape(-1, VOCAB), target)
    assert loss_after < loss_before


def _peak_bytes(fn) -> int:
    """Peak of the CPU allocator's total during ``fn()`` (profiler memory events)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    peak, stack = 0, list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation:
            peak = max(peak, event.extra_fields.total_allocated)
    return peak


def test_training_step_peak_memory_is_below_the_unfused_model_at_32k_vocabulary():
    vocab = 32_768
    ids, labels = _batch(vocab=vocab, batch=4, length=64)
    unfused = _llama(vocab, hidden=32).train()
    # 16-token chunks: 2 MiB of logits each (the default, 128 tokens, is sized for H >= 1024)
    fused = enable_fused_calibration_loss(
        _llama(vocab, hidden=32).train(), "dual_focal", chunk_size=16
    )

    def step(model):
        def run():
            model(input_ids=ids, labels=labels).loss.backward()

        return run

    unfused_peak, fused_peak = _peak_bytes(step(unfused)), _peak_bytes(step(fused))
    logits_bytes = 4 * 64 * vocab * 4  # 32 MiB
    # the unfused step holds the logits and their gradient; the fused one a chunk at a time
    assert fused_peak + logits_bytes < unfused_peak, (fused_peak, unfused_peak)


def test_unsupported_models_are_refused():
    with pytest.raises(TypeError, match="model: expected a transformers causal LM"):
        enable_fused_calibration_loss(torch.nn.Linear(3, 4))
    model = _llama()
    model.config.logit_scale = 0.5
    with pytest.raises(ValueError, match=r"config.logit_scale=0.5 changes the logits"):
        enable_fused_calibration_loss(model)
    with pytest.raises(ValueError, match="loss: expected a per-token loss"):
        enable_fused_calibration_loss(_llama(), "mmce")


def test_docstring_example_runs():
    import focalcal.integrations.transformers_fused as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
