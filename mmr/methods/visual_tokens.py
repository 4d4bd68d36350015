"""Visual tokens inside a text encoder: MARVEL's document encoder, shared by MARVEL and CIEA.

An image document is the sequence ``[lead] <im_start> v1 .. vN <im_end> (caption) [end]`` where each v_i
is one cell of the frozen vision backbone's grid passed through ``Linear(grid_dim -> hidden)`` (the visual
module), ``[lead]`` the special tokens the text backbone starts a text with ([CLS] for BERT, none for T5) and
``[end]`` its closing one. The text backbone (a ``TextStack``) reads it as input embeddings and its pooled,
L2-normalised output is the document embedding. Queries and text documents go through the same encoder with
no visual tokens, so before training a query embeds exactly as the text backbone embeds it.

The pooling is the backbone's: the stand-in sentence encoder was trained for mean-pooled embeddings (its
[CLS] state was never trained to summarise anything); T5-ANCE pools on its first decoder state, as MARVEL does.

The forward pass can stop after ``k`` layers and resume from there (``lower``/``upper``): when the visual
module and the bottom layers are frozen, the trainers compute the states at layer ``k`` once and train
only the top layers, which is what keeps the language-model stages within a CPU budget.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmr.encoders.text_stack import TextStack, open_text_stack, saved_text_stack

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "visual_tokens.json"


@dataclass(frozen=True)
class VisualTokenConfig:
    grid_dim: int  # the vision backbone's grid state size (VisionBackbone.grid_dim)
    max_text_length: int = 64
    caption_length: int = 24  # wordpieces of an image document's caption (CIEA's verbalisation), [SEP] included
    init_logit_scale: float = math.log(20.0)  # the stand-in's cosines are spread wider than CLIP's: 20, not 100
    max_logit_scale: float = math.log(100.0)
    class_words: int = 0  # > 0: add each cell's soft ImageNet class as a word (see VisualModule); the class count
    class_temperature: float = 2.0


class VisualModule(nn.Module):
    """Grid cell -> one input token: MARVEL's ``Linear(channels -> hidden)``, plus (``class_words``) the cell's
    soft ImageNet class put into the language model's word space.

    Why the second term: MARVEL's patches are CLIP states, already aligned with language, and a linear map
    suffices. The stand-in CNN's cells are not, and ~3,000 noisy pairs teach a linear map little. The frozen
    classifier applied to a cell, softmax(fc(cell) / T), weighting a table of class-name word embeddings makes
    each visual token start as the word for what the cell shows (docs/findings.md has the dev scores of both).
    The table is trained with the linear map; the classifier stays frozen.
    """

    def __init__(self, config: VisualTokenConfig, hidden: int):
        super().__init__()
        self.linear = nn.Linear(config.grid_dim, hidden)
        self.temperature = config.class_temperature
        if config.class_words:
            self.register_buffer("class_weight", torch.zeros(config.class_words, config.grid_dim))
            self.register_buffer("class_bias", torch.zeros(config.class_words))
            self.words = nn.Parameter(torch.zeros(config.class_words, hidden))
        else:
            self.words = None

    def init_class_words(self, weight: torch.Tensor, bias: torch.Tensor, words: torch.Tensor) -> None:
        """Frozen classifier (classes, channels) + (classes,), and each class name's word embedding."""
        with torch.no_grad():
            self.class_weight.copy_(weight)
            self.class_bias.copy_(bias)
            self.words.copy_(words)
            self.linear.weight.zero_()  # start exactly at the class words; the linear map learns the rest
            self.linear.bias.zero_()

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        tokens = self.linear(grid)
        if self.words is not None:
            classes = ((grid @ self.class_weight.T + self.class_bias) / self.temperature).softmax(dim=-1)
            tokens = tokens + classes @ self.words
        return tokens


class VisualTokenEncoder(nn.Module):
    """A text backbone that reads texts, and images as visual tokens between two learned markers.

    ``extractor`` (CIEA) rewrites the projected patches given the caption's token embeddings before
    they enter the language model; ``None`` gives MARVEL's plain path.
    """

    def __init__(self, lm: TextStack, config: VisualTokenConfig, extractor: nn.Module | None = None):
        super().__init__()
        self.lm, self.config = lm, config
        hidden = lm.hidden_size
        self.visual = VisualModule(config, hidden)
        words = lm.model.get_input_embeddings().weight.detach()
        # New vocabulary entries start at the mean word embedding, as resizing an embedding table does.
        self.markers = nn.Parameter(words.mean(0).repeat(2, 1) + 0.02 * torch.randn(2, hidden))
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))
        self.extractor = extractor

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    @property
    def hidden_size(self) -> int:
        return self.lm.hidden_size

    @property
    def num_layers(self) -> int:
        return self.lm.num_layers

    def phrase_embeddings(self, phrases: Sequence[str]) -> torch.Tensor:
        """Mean input word embedding of each phrase's wordpieces (how a class name enters the word space)."""
        ids, mask = self.tokenize(phrases, 16)
        last = mask.sum(1) - 1
        mask = mask.clone()
        mask[:, : self.lm.lead_tokens] = 0  # [CLS]
        mask[torch.arange(len(mask), device=self.device), last] = 0  # [SEP], </s>
        weights = mask.unsqueeze(-1).float()
        with torch.no_grad():
            return (self.word_embeddings(ids) * weights).sum(1) / weights.sum(1).clamp(min=1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=self.config.max_logit_scale).exp()

    # ---- inputs -------------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.markers.device

    def tokenize(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask, on the model's device."""
        return self.lm.tokenize(texts, max_length)

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.word_embeddings(ids)

    def text_inputs(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts, self.config.max_text_length)
        return self.word_embeddings(ids), mask

    def caption_tokens(self, captions: Sequence[str] | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens after the lead ones: the caption, then the closing token (alone for an image-only document)."""
        ids, mask = self.tokenize(list(captions) if captions is not None else [""] * n, self.config.caption_length)
        lead = self.lm.lead_tokens
        return ids[:, lead:], mask[:, lead:]

    def image_inputs(
        self, grid: torch.Tensor, captions: Sequence[str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[lead] <im_start> v1..vP <im_end> caption [end]`` as input embeddings and attention mask."""
        batch = grid.shape[0]
        patches = self.visual(grid.float())
        tail_ids, tail_mask = self.caption_tokens(captions, batch)
        tail = self.word_embeddings(tail_ids)
        if self.extractor is not None:
            words = tail_mask.clone()
            # the closing [SEP] is not a caption word
            words[torch.arange(batch, device=self.device), tail_mask.sum(1) - 1] = 0
            patches = self.extractor(patches, tail, words)
        lead = self.lm.lead_embeddings(batch)
        start, end = (marker.expand(batch, 1, -1) for marker in self.markers.split(1))
        embeds = torch.cat([lead, start, patches, end, tail], dim=1)
        head = torch.ones(batch, lead.shape[1] + patches.shape[1] + 2, dtype=tail_mask.dtype, device=self.device)
        return embeds, torch.cat([head, tail_mask], dim=1)

    # ---- the encoder, split at a layer ---------------------------------------------------------------------------
    def lower(self, embeds: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        """States after the embedding layer and the first ``layers`` transformer layers."""
        return self.lm.lower(embeds, mask, layers)

    def upper(self, hidden: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        """From the states after ``layers`` layers to the L2-normalised, pooled embedding."""
        return F.normalize(self.lm.upper(hidden, mask, layers), dim=-1)

    def embed(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(embeds, mask, 0), mask, 0)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.embed(*self.text_inputs(texts))

    def embed_images(self, grid: torch.Tensor, captions: Sequence[str] | None = None) -> torch.Tensor:
        return self.embed(*self.image_inputs(grid, captions))

    # ---- persistence ------------------------------------------------------------------------------------------------
    def save(self, folder: Path, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().clone() for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        self.lm.save_config(folder)
        (folder / CONFIG_FILE).write_text(json.dumps({"config": asdict(self.config), **(extra or {})}, indent=2))


def load_language_model(path: str | Path) -> TextStack:
    """A trainable copy of a text checkpoint with its tokenizer (the stand-in text backbone by default)."""
    return open_text_stack(path)


# Saved before the text backbone was a TextStack: the language model's keys sat directly under "lm."
_LEGACY_PREFIX, _STACK_PREFIX = "lm.", "lm.model."


def _current_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(key.startswith(_STACK_PREFIX) for key in state):
        return state
    return {
        (_STACK_PREFIX + key[len(_LEGACY_PREFIX) :] if key.startswith(_LEGACY_PREFIX) else key): value
        for key, value in state.items()
    }


def load_saved(folder: Path, extractor: nn.Module | None = None) -> tuple[VisualTokenEncoder, dict]:
    """Rebuild an encoder saved by ``VisualTokenEncoder.save``; returns it and the saved extras."""
    from safetensors.torch import load_file

    saved = json.loads((folder / CONFIG_FILE).read_text())
    encoder = VisualTokenEncoder(saved_text_stack(folder), VisualTokenConfig(**saved.pop("config")), extractor)
    encoder.load_state_dict(_current_keys(load_file(str(folder / WEIGHTS_FILE))))
    return encoder.eval(), saved


class VisualTokenDualEncoder:
    """The ``DualEncoderModel`` the trained retriever indexes with (numpy in, float32 L2-normalised out).

    ``captioner`` turns an image's frozen features into its caption text, for models whose image
    documents carry one (borrowed captions, or CIEA's older class-name verbalisation); ``None`` keeps
    image documents image-only.
    """

    needs_grid = True

    def __init__(self, encoder: VisualTokenEncoder, captioner=None, batch_size: int = 64, device: str = "cpu"):
        self.encoder = encoder.to(device).eval()
        self.captioner = captioner
        self.batch_size = batch_size
        self.dim = encoder.hidden_size

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], progress: bool | str = False) -> np.ndarray:
        from mmr.encoders.base import batched, in_length_order

        def encode(ordered: list[str]) -> np.ndarray:
            parts = [self.encoder.embed_texts(chunk) for chunk in batched(ordered, self.batch_size, progress)]
            return _stack(parts, self.dim)

        return in_length_order(list(texts), encode)

    @torch.inference_mode()
    def encode_images(self, features, progress: bool | str = "visual-token documents") -> np.ndarray:
        from mmr.encoders.base import batched

        rows = list(range(len(features.grid)))
        captions = self.captioner(features) if self.captioner is not None else None
        parts = []
        for chunk in batched(rows, self.batch_size, progress if len(rows) > self.batch_size else False):
            grid = torch.from_numpy(np.asarray(features.grid[chunk[0] : chunk[-1] + 1], dtype=np.float32))
            grid = grid.to(self.encoder.device)
            parts.append(self.encoder.embed_images(grid, captions[chunk[0] : chunk[-1] + 1] if captions else None))
        return _stack(parts, self.dim)


def _stack(parts: list[torch.Tensor], dim: int) -> np.ndarray:
    if not parts:
        return np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(torch.cat(parts).float().cpu().numpy(), dtype=np.float32)
