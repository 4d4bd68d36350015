"""UniVL-DR's and CLIP-DPR's published checkpoints: OpenAI-layout CLIP weights, read into transformers' CLIPModel.

OpenMatch/UniVL-DR loads ``model.best.pt`` (``{"epoch", "model"}``) into OpenAI's ``clip`` package
(``clip.load("ViT-B/32")``). That package is not installed here, so the state dict is renamed to transformers'
CLIP layout: the same arithmetic (pre-LN blocks, QuickGELU, causal text attention, the end-of-text token and
the class token pooled), with each fused attention input projection split into query, key and value, and the
two projections stored transposed. Training kept most matrices in fp16 (``clip.model.convert_weights``); they
are read as float32.

Encoding follows the repository's ``gen_embeddings.py``: queries and text documents are CLIP text embeddings
(77 tokens, truncated); an image document is ``normalize(encode_image(image) + encode_text(caption))``, the sum
of the two raw (unnormalised) embeddings; an image without a caption, or an image query, is the image's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmr.corpus.images import composite_on_white, pad_to_square
from mmr.encoders.base import batched, l2_normalise
from mmr.encoders.clip import checkpoint_tag
from mmr.presets.base import PresetFilesError, PresetModel, PresetSpec

BATCH = 32

# OpenAI block parameter -> transformers encoder-layer parameter (the fused attn.in_proj_* is split apart)
_BLOCK_NAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
}
_FUSED = ("attn.in_proj_weight", "attn.in_proj_bias")

# OpenAI name -> transformers name, for everything outside the residual blocks; (transposed) marks the
# projections OpenAI applies as ``x @ P`` where transformers' Linear computes ``x @ W.T``
_OUTER_NAMES = {
    "token_embedding.weight": ("text_model.embeddings.token_embedding.weight", False),
    "positional_embedding": ("text_model.embeddings.position_embedding.weight", False),
    "ln_final.weight": ("text_model.final_layer_norm.weight", False),
    "ln_final.bias": ("text_model.final_layer_norm.bias", False),
    "text_projection": ("text_projection.weight", True),
    "logit_scale": ("logit_scale", False),
    "visual.conv1.weight": ("vision_model.embeddings.patch_embedding.weight", False),
    "visual.class_embedding": ("vision_model.embeddings.class_embedding", False),
    "visual.positional_embedding": ("vision_model.embeddings.position_embedding.weight", False),
    "visual.ln_pre.weight": ("vision_model.pre_layrnorm.weight", False),
    "visual.ln_pre.bias": ("vision_model.pre_layrnorm.bias", False),
    "visual.ln_post.weight": ("vision_model.post_layernorm.weight", False),
    "visual.ln_post.bias": ("vision_model.post_layernorm.bias", False),
    "visual.proj": ("visual_projection.weight", True),
}
_TOWERS = {"": "text_model", "visual.": "vision_model"}  # OpenAI prefix of a tower's blocks -> transformers tower
_BLOCK_KEY = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$")


class CheckpointLayoutError(ValueError):
    """A checkpoint whose keys are not the OpenAI CLIP layout the config describes."""


def expected_openai_keys(text_layers: int, vision_layers: int) -> set[str]:
    """Every key an OpenAI ViT CLIP state dict with these depths holds (no buffers: its mask is an attribute)."""
    block = set(_BLOCK_NAMES) | set(_FUSED)
    keys = set(_OUTER_NAMES)
    for prefix, layers in (("", text_layers), ("visual.", vision_layers)):
        keys |= {f"{prefix}transformer.resblocks.{i}.{name}" for i in range(layers) for name in block}
    return keys


def openai_to_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict under transformers' CLIPModel names, float32. Keys must be OpenAI's (checked before)."""
    converted = {}
    for key, tensor in state.items():
        tensor = tensor.float()
        if key in _OUTER_NAMES:
            name, transposed = _OUTER_NAMES[key]
            converted[name] = tensor.t().contiguous() if transposed else tensor
            continue
        prefix, layer, name = _BLOCK_KEY.match(key).groups()
        target = f"{_TOWERS[prefix or '']}.encoder.layers.{layer}."
        if name in _FUSED:
            # nn.MultiheadAttention stacks the query, key and value projections along the output dimension
            part = name.rsplit("_", 1)[-1]  # weight or bias
            for role, piece in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                converted[f"{target}self_attn.{role}_proj.{part}"] = piece.contiguous()
        else:
            converted[target + _BLOCK_NAMES[name]] = tensor
    return converted


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The ``model`` entry of a ``{"epoch", "model"}`` file as train.py saves it."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, Mapping) or "model" not in saved:
        found = sorted(saved)[:5] if isinstance(saved, Mapping) else type(saved).__name__
        raise CheckpointLayoutError(f"{path} is not UniVL-DR's {{'epoch', 'model'}} checkpoint (found {found})")
    return dict(saved["model"])


def _check_keys(state: Mapping[str, torch.Tensor], expected: set[str], path: Path) -> None:
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointLayoutError(
            f"{path} is not an OpenAI-layout CLIP state dict of the base config's depth: "
            f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
        )


class OpenAIClipPreset(PresetModel):
    def __init__(self, name: str, model, tokenizer, processor, max_length: int, pad: bool, device: str, tag: str):
        self.name, self.model, self.tokenizer, self.processor = name, model, tokenizer, processor
        self.max_length, self.pad, self.device, self._tag = max_length, pad, device, tag
        self.dim = int(model.config.projection_dim)

    @torch.inference_mode()
    def _text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Raw (unnormalised) projected end-of-text states: OpenAI's ``encode_text``."""
        parts = [torch.zeros((0, self.dim), device=self.device)]
        for chunk in batched(list(texts), BATCH):
            batch = self.tokenizer(
                list(chunk), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            pooled = self.model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            parts.append(self.model.text_projection(pooled.pooler_output))
        return torch.cat(parts)

    @torch.inference_mode()
    def _image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Raw projected class tokens: OpenAI's ``encode_image``. The processor centre-crops as clip's own
        transform does: the checkpoints were trained and indexed on crops, so padding to a square (what this
        project's own CLIP encoders do) is an option a spec may set, not the default."""
        parts = [torch.zeros((0, self.dim), device=self.device)]
        for chunk in batched(list(images), BATCH):
            rgb = [pad_to_square(image) if self.pad else composite_on_white(image) for image in chunk]
            pixels = self.processor(images=rgb, return_tensors="pt")["pixel_values"].to(self.device)
            parts.append(self.model.visual_projection(self.model.vision_model(pixel_values=pixels).pooler_output))
        return torch.cat(parts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalise(self._text_embeddings(texts).cpu().numpy())

    def encode_text_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_queries(texts)

    def encode_image_documents(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        vectors = self._image_embeddings(images).cpu().numpy()
        captioned = [row for row, caption in enumerate(captions) if caption.strip()]
        if captioned:  # the raw embeddings summed, then normalised, as gen_embeddings.py does
            vectors[captioned] += self._text_embeddings([captions[row] for row in captioned]).cpu().numpy()
        return l2_normalise(vectors)

    def encode_image_queries(self, images: Sequence[Image.Image]) -> np.ndarray:
        return l2_normalise(self._image_embeddings(images).cpu().numpy())

    def tag(self) -> str:
        return self._tag


def read_clip_checkpoint(spec: PresetSpec, folder: Path, device: str) -> OpenAIClipPreset:
    """UniVL-DR's or CLIP-DPR's ``model.best.pt`` as a dual encoder, on ``device``."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizerFast

    base = spec.base(folder, "clip")
    try:
        config = CLIPConfig.from_pretrained(base)
        tokenizer = CLIPTokenizerFast.from_pretrained(base)
        processor = CLIPImageProcessorPil.from_pretrained(base)
    except OSError as error:
        raise PresetFilesError(f"{spec.name}: no CLIP config, tokenizer and processor at {base} ({error})") from error
    for tower in (config.text_config, config.vision_config):
        # OpenAI's blocks: QuickGELU and torch's default LayerNorm epsilon, whatever the base config says
        tower.hidden_act, tower.layer_norm_eps = "quick_gelu", 1e-5
    path = folder / spec.checkpoint
    state = read_state_dict(path)
    _check_keys(
        state, expected_openai_keys(config.text_config.num_hidden_layers, config.vision_config.num_hidden_layers), path
    )
    model = CLIPModel(config)
    try:
        model.load_state_dict(openai_to_transformers(state), strict=True)
    except RuntimeError as error:  # right names, wrong shapes: the base config is not the checkpoint's
        raise CheckpointLayoutError(f"{path} does not fit the CLIP config at {base}: {error}") from error
    model.to(device).eval()
    max_length = min(int(spec.options.get("max_length", 77)), int(config.text_config.max_position_embeddings))
    pad = bool(spec.options.get("pad_to_square", False))
    tag = f"{spec.name}:{checkpoint_tag(folder)}{':padded' if pad else ''}"
    return OpenAIClipPreset(spec.name, model, tokenizer, processor, max_length, pad, device, tag)
