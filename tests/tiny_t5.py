"""A tiny T5 checkpoint a test creates: the stand-in for T5-ANCE (no model hub here)."""

from __future__ import annotations

from pathlib import Path


def t5_tokenizer(words: list[str]):
    """A real T5-style (Unigram, metaspace) tokenizer over ``words``: pad 0, eos 1, unk 2."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + word, -1.0) for word in words] + [(word, -3.0) for word in words]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def save_tiny_t5(folder: Path, words: list[str], layers: int = 2, seed: int = 0) -> Path:
    """A ``layers``-block, 16-wide T5 encoder-decoder (one decoder block) with its tokenizer."""
    import torch
    from transformers import T5Config, T5Model

    tokenizer = t5_tokenizer(words)
    tokenizer.save_pretrained(folder)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=layers,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
    )
    torch.manual_seed(seed)
    T5Model(config).save_pretrained(folder)
    return folder
