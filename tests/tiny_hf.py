"""Tiny Hugging Face models built from configs with random init (no download), shared by the
integration tests (importable because ``tests`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

from typing import Any


def tiny_gpt2() -> Any:
    """A 1-layer GPT-2 over a 30-token vocabulary, dropout off, seeded: every call is the same."""
    import torch
    import transformers

    config = transformers.GPT2Config(
        vocab_size=30, n_positions=16, n_embd=16, n_layer=1, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)
