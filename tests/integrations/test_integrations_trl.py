"""focalcal's loss in TRL's real ``SFTTrainer`` (a tiny GPT-2 from a config, a word-level
tokenizer built here; CPU, no network): gradient accumulation stays exact."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
tokenizers = pytest.importorskip("tokenizers")

from focalcal.integrations.transformers import calibration_loss_func  # noqa: E402
from tiny_hf import tiny_gpt2  # noqa: E402


def _tokenizer() -> transformers.PreTrainedTokenizerFast:
    vocab = {f"t{i}": i for i in range(29)} | {"[PAD]": 29}
    model = tokenizers.models.WordLevel(vocab, unk_token="[PAD]")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer(model), pad_token="[PAD]", eos_token="[PAD]"
    )


def _sft_step(tmp_path, batch: int, accumulation: int, seen: list) -> dict:
    ids = torch.randint(0, 29, (32, 12), generator=torch.Generator().manual_seed(0)).tolist()
    loss = calibration_loss_func("dual_focal")

    def counted(outputs, labels, num_items_in_batch=None):
        seen.append(num_items_in_batch)
        return loss(outputs, labels, num_items_in_batch=num_items_in_batch)

    config = trl.SFTConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation, use_cpu=True, report_to="none",
        save_strategy="no", disable_tqdm=True, logging_strategy="no", optim="sgd",
        learning_rate=0.5, lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0,
        seed=0, dataloader_num_workers=0, packing=False, max_length=16, bf16=False, fp16=False,
    )  # fmt: skip
    model = tiny_gpt2()
    trainer = trl.SFTTrainer(
        model=model, args=config, train_dataset=datasets.Dataset.from_dict({"input_ids": ids}),
        processing_class=_tokenizer(), compute_loss_func=counted,
    )  # fmt: skip
    trainer.train()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sft_trainer_uses_the_loss_and_accumulation_is_exact(tmp_path) -> None:
    seen: list = []
    one_batch = _sft_step(tmp_path, 32, 1, seen)
    accumulated = _sft_step(tmp_path, 8, 4, seen)
    assert len(seen) == 5 and all(n is not None for n in seen)  # our loss, told the token count
    assert len({int(n) for n in seen}) == 1  # every micro-batch divides by the whole batch's count
    diff = max(
        float((one_batch[k].double() - accumulated[k].double()).abs().max()) for k in one_batch
    )
    moved = max(float((one_batch[k].double() - tiny_gpt2().state_dict()[k].double()).abs().max())
                for k in one_batch)  # fmt: skip
    assert diff < 1e-6 and moved > 1e-3
