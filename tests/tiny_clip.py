"""A tiny CLIP checkpoint a test creates: the stand-in for a published one (no model hub here)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_clip(folder: Path, words: list[str], seed: int = 0, layers: int = 1) -> Path:
    """A ``layers``-layer (one by default), 16-wide CLIP (32-pixel images in 8-pixel patches: a 4x4 grid; 8-d
    projections) with a byte-pair vocabulary that spells ``words``, saved with its tokenizer and image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizerFast

    start, end = "<|startoftext|>", "<|endoftext|>"
    vocab = {start: 0, end: 1}
    letters = sorted(set("".join(words)))
    for token in letters + [f"{letter}</w>" for letter in letters]:
        vocab.setdefault(token, len(vocab))
    merges = []  # each word built letter by letter, its last letter carrying the end-of-word mark
    for word in words:
        merged = word[0]
        for i, letter in enumerate(word[1:], 1):
            piece = letter + ("</w>" if i == len(word) - 1 else "")
            merges.append((merged, piece))
            merged += piece
            vocab.setdefault(merged, len(vocab))
    tokenizer = CLIPTokenizerFast(vocab=vocab, merges=merges, unk_token=end, bos_token=start, eos_token=end)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=layers, num_attention_heads=2)
    config = CLIPConfig(
        # eos_token_id names the end-of-text id, where CLIP pools a text (the default assumes CLIP's own vocabulary)
        text_config=dict(
            **tower, vocab_size=len(vocab), max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1
        ),
        vision_config=dict(**tower, image_size=32, patch_size=8),
        projection_dim=8,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    return folder
