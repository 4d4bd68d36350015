"""A tiny BERT checkpoint a test creates: the stand-in for a published text checkpoint (no model hub here)."""

from __future__ import annotations

from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_bert(folder: Path, words: list[str], layers: int = 2, seed: int = 0) -> Path:
    """A ``layers``-layer, 16-wide BERT whose vocabulary is the special tokens plus ``words``, saved with
    its tokenizer where ``from_pretrained`` loads both."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = SPECIAL + [w for w in words if w not in SPECIAL]
    # transformers 5 reads ``vocab=`` (a dict); ``vocab_file=`` is ignored and leaves every word [UNK]
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)})
    plain = [w for w in words if not w.startswith("##") and w not in SPECIAL]
    assert tokenizer.unk_token_id not in tokenizer(" ".join(plain))["input_ids"], "tiny vocabulary not read"
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return folder
