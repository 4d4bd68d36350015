"""Text backbones opened up: what the trained methods need from a text transformer, and nothing of its family.

A ``TextStack`` tokenises, embeds tokens, and runs its layers in two parts: ``lower`` (embedding layer and the
first ``k`` layers) and ``upper`` (the rest, then the pooled, unnormalised vector). The split is what lets a
trainer compute frozen bottom layers once and train only the top ones on a CPU. The methods feed ``lower``
input embeddings rather than ids, so an image can enter as tokens (MARVEL's visual module, CIEA's extractor).

Each family pools as its published models do:

- BERT-like encoders (the packaged MiniLM): the mean over attended tokens, as sentence-transformers trained it;
- CLIP's text tower: the end-of-text state after the final layer norm (the tower's ``pooler_output``);
- T5 (T5-ANCE): the decoder's state at one step from token 0, as MARVEL's ``ANCE/multi_model.py`` reads it.

Which class opens a checkpoint is data (``TEXT_STACKS``, keyed by the checkpoint's ``model_type``), so a new
family is one class and one entry; no method names a family, a layer attribute or a size.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn


class TextStack(nn.Module):
    """A text transformer, its tokenizer, and the three things a method does with it: embed, split, pool."""

    lead_tokens: int  # special tokens a tokenised text starts with ([CLS], <|startoftext|>; none for T5)
    pooling: str  # what ``upper`` returns, in words (shown in a model's card)
    model_class: str  # the transformers class that holds the weights

    def __init__(self, model: nn.Module, tokenizer) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        # the special ids a tokenised text starts and ends with, read once from the tokenizer itself
        specials = tokenizer("")["input_ids"]
        self._lead_ids, self._closing_ids = specials[: self.lead_tokens], specials[self.lead_tokens :]

    # ---- opening a checkpoint ---------------------------------------------------------------------------------
    @classmethod
    def _transformers_class(cls):
        import transformers

        return getattr(transformers, cls.model_class)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TextStack:
        from transformers import AutoTokenizer

        return cls(cls._transformers_class().from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path)))

    @classmethod
    def from_saved_config(cls, folder: str | Path, tokenizer_folder: str | Path | None = None) -> TextStack:
        """The architecture saved by ``save_config`` with fresh weights: the caller loads its own state dict."""
        from transformers import AutoTokenizer

        model_class = cls._transformers_class()
        config = model_class.config_class.from_pretrained(str(folder))
        return cls(model_class(config), AutoTokenizer.from_pretrained(str(tokenizer_folder or folder)))

    def save_config(self, folder: Path) -> None:
        self.model.config.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))

    # ---- sizes and inputs -------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def attention_heads(self) -> int:
        config = self.model.config
        return int(getattr(config, "num_attention_heads", None) or config.num_heads)

    @property
    def layers(self) -> nn.ModuleList:
        """The transformer layers ``lower`` and ``upper`` split (T5: its encoder's blocks)."""
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def max_positions(self) -> int | None:
        """The longest input the model can read (learned position tables), or None (relative positions)."""
        return None

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def tokenize(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Input ids and attention mask on the model's device; an empty text becomes a space (never no tokens)."""
        if self.max_positions is not None:
            max_length = min(max_length, self.max_positions)
        batch = self.tokenizer(
            [text if text and text.strip() else " " for text in texts],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def wrap_ids(self, content: Sequence[int]) -> list[int]:
        """Token ids as the tokenizer would give them for a text: the family's lead and closing ids around
        them ([CLS] .. [SEP] for BERT, .. </s> for T5)."""
        return [*self._lead_ids, *content, *self._closing_ids]

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def lead_embeddings(self, batch: int) -> torch.Tensor:
        """(batch, lead_tokens, hidden): the special tokens every tokenised text starts with."""
        ids = torch.tensor([self._lead_ids], dtype=torch.long, device=self.device)
        return self.word_embeddings(ids).expand(batch, -1, -1)

    # ---- the forward pass, split at a layer -------------------------------------------------------------------
    def lower(self, embeds: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        """States after the embedding layer and the first ``layers`` layers."""
        raise NotImplementedError

    def upper(self, hidden: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        """From the states after ``layers`` layers to the pooled vector (not normalised)."""
        raise NotImplementedError

    def embed(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(embeds, mask, 0), mask, 0)

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embed(self.word_embeddings(ids), mask)

    # ---- what training changes --------------------------------------------------------------------------------
    def upper_parameters(self, layers: int) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) of everything ``upper(., ., layers)`` runs: what a trainer of the top fine-tunes.

        Nothing the bottom also reads is: the word-embedding table (most of the weights; T5's decoder reads it
        too) and T5's relative-position table (its first block's, read by every block), or a cached bottom
        would go stale."""
        words = self.model.get_input_embeddings().weight
        prefixes = self._upper_prefixes(layers)
        for name, parameter in self.model.named_parameters():
            if parameter is not words and name.startswith(prefixes):
                yield name, parameter

    def _upper_prefixes(self, layers: int) -> tuple[str, ...]:
        raise NotImplementedError

    def keep_first_layers(self, layers: int) -> None:
        """Cut the stack to its first ``layers`` layers (a cheaper student made of the teacher's bottom)."""
        if not 0 < layers <= self.num_layers:
            raise ValueError(f"a stack of {self.num_layers} layers keeps 1..{self.num_layers}, not {layers}")
        del self.layers[layers:]
        self._record_layer_count(layers)

    def _record_layer_count(self, layers: int) -> None:
        self.model.config.num_hidden_layers = layers


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of the attended tokens' states (padding left out)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class EncoderStack(TextStack):
    """A stack of encoder layers with absolute positions: embed, run layers under one mask, pool. A family
    says how it embeds positions, which mask it attends with, how a layer is called and how it pools."""

    def _positions(self, embeds: torch.Tensor) -> torch.Tensor:
        # BERT's and CLIP's embedding modules both add absolute positions to given input embeddings
        return self.model.embeddings(inputs_embeds=embeds)

    def _attention(self, hidden: torch.Tensor, mask: torch.Tensor):
        raise NotImplementedError

    def _run_layer(self, layer: nn.Module, hidden: torch.Tensor, attention) -> torch.Tensor:
        return layer(hidden, attention)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _run(self, hidden: torch.Tensor, mask: torch.Tensor, layers) -> torch.Tensor:
        attention = self._attention(hidden, mask)
        for layer in layers:
            hidden = self._run_layer(layer, hidden, attention)
        return hidden

    def lower(self, embeds: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        return self._run(self._positions(embeds), mask, self.layers[:layers])

    def upper(self, hidden: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        return self._pool(self._run(hidden, mask, self.layers[layers:]), mask)

    @property
    def max_positions(self) -> int:
        return int(self.model.config.max_position_embeddings)


class BertStack(EncoderStack):
    """BERT-like encoders (MiniLM): absolute positions, bidirectional, mean-pooled."""

    lead_tokens = 1
    pooling = "mean of the token states"
    model_class = "BertModel"

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layer

    def _attention(self, hidden: torch.Tensor, mask: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=mask)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_mean(hidden, mask)

    def _upper_prefixes(self, layers: int) -> tuple[str, ...]:
        return tuple(f"encoder.layer.{i}." for i in range(layers, self.num_layers))


class CLIPTextStack(EncoderStack):
    """CLIP's text tower: causal attention, learned positions (77), pooled at the end-of-text token."""

    lead_tokens = 1
    pooling = "end-of-text state after the final layer norm"
    model_class = "CLIPTextModel"

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layers

    def _attention(self, hidden: torch.Tensor, mask: torch.Tensor):
        from transformers.masking_utils import create_causal_mask

        return create_causal_mask(
            config=self.model.config, inputs_embeds=hidden, attention_mask=mask, past_key_values=None
        )

    def _run_layer(self, layer: nn.Module, hidden: torch.Tensor, attention) -> torch.Tensor:
        return layer(hidden, attention, is_causal=True)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.final_layer_norm(hidden)
        # right padding: the end-of-text token is the last attended one (the tower looks for its id, which an
        # input given as embeddings no longer has)
        last = mask.sum(1).long() - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def _upper_prefixes(self, layers: int) -> tuple[str, ...]:
        return (*(f"encoder.layers.{i}." for i in range(layers, self.num_layers)), "final_layer_norm.")


class T5Stack(TextStack):
    """T5 as an encoder-decoder retriever (T5-ANCE): relative positions, pooled by one decoder step from token 0.

    The encoder's first block owns the relative-position table every block uses; ``upper`` recomputes the bias
    from it when it starts past that block."""

    lead_tokens = 0
    pooling = "first decoder state (one step from token 0)"
    model_class = "T5Model"

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.block

    def _attention(self, hidden: torch.Tensor, mask: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.model.encoder.config, inputs_embeds=hidden, attention_mask=mask)

    def _run(self, hidden: torch.Tensor, mask: torch.Tensor, blocks, bias: torch.Tensor | None) -> torch.Tensor:
        attention = self._attention(hidden, mask)
        for block in blocks:
            hidden, bias, _ = block(hidden, attention, bias)
        return hidden

    def lower(self, embeds: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        hidden = self.model.encoder.dropout(embeds)
        return self._run(hidden, mask, self.layers[:layers], None)

    def upper(self, hidden: torch.Tensor, mask: torch.Tensor, layers: int) -> torch.Tensor:
        bias = None
        if layers > 0:
            length = hidden.shape[1]
            bias = self.layers[0].layer[0].SelfAttention.compute_bias(length, length, device=hidden.device)
        hidden = self._run(hidden, mask, self.layers[layers:], bias)
        hidden = self.model.encoder.dropout(self.model.encoder.final_layer_norm(hidden))
        start = torch.zeros((hidden.shape[0], 1), dtype=torch.long, device=hidden.device)
        decoded = self.model.decoder(
            input_ids=start, encoder_hidden_states=hidden, encoder_attention_mask=mask, use_cache=False
        )
        return decoded.last_hidden_state[:, 0]

    def _upper_prefixes(self, layers: int) -> tuple[str, ...]:
        blocks = tuple(f"encoder.block.{i}." for i in range(layers, self.num_layers))
        return (*blocks, "encoder.final_layer_norm.", "decoder.")

    def _record_layer_count(self, layers: int) -> None:
        self.model.config.num_layers = layers


# model_type of a checkpoint's config -> the stack that opens it. CLIP's full checkpoints ("clip") open as
# their text tower.
TEXT_STACKS: dict[str, str] = {
    "bert": "mmr.encoders.text_stack:BertStack",
    "clip": "mmr.encoders.text_stack:CLIPTextStack",
    "clip_text_model": "mmr.encoders.text_stack:CLIPTextStack",
    "t5": "mmr.encoders.text_stack:T5Stack",
}


def stack_class(folder: str | Path) -> type[TextStack]:
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(str(folder)).model_type
    if model_type not in TEXT_STACKS:
        raise ValueError(
            f"{folder} holds a {model_type!r} model; the methods can open {sorted(TEXT_STACKS)} text backbones"
        )
    module_name, class_name = TEXT_STACKS[model_type].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def open_text_stack(folder: str | Path) -> TextStack:
    """A trainable copy of the checkpoint at ``folder``, with its tokenizer."""
    return stack_class(folder).from_pretrained(folder)


def saved_text_stack(folder: str | Path, tokenizer_folder: str | Path | None = None) -> TextStack:
    """The architecture a method saved beside its weights (``TextStack.save_config``), freshly initialised;
    ``tokenizer_folder`` where the tokenizer was saved apart from the config."""
    return stack_class(folder).from_saved_config(folder, tokenizer_folder)
