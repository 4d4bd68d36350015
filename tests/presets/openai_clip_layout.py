"""A tiny random checkpoint in UniVL-DR's published layout, and OpenAI CLIP's forward pass written out with torch
ops over that layout: the reference the preset reader is checked against (no code shared with the reader).

The layout: ``torch.save({"epoch": ..., "model": state_dict}, "model.best.pt")`` where ``state_dict`` is OpenAI's
``clip.model.CLIP`` (ViT) after ``clip.model.convert_weights``: convolution, linear and fused attention weights
and the two projections in fp16, embeddings, layer norms and ``logit_scale`` in fp32.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from tests.tiny_clip import save_tiny_clip

WORDS = ["a", "red", "flower", "cat", "dog", "blue", "car", "with", "caption"]
TEXT_WIDTH, VISION_WIDTH, HEADS, LAYERS = 16, 24, 2, 2  # two towers of different widths: no key can be swapped
CONTEXT, IMAGE, PATCH, EMBED = 16, 32, 8, 8


def _block_shapes(width: int) -> dict[str, tuple[int, ...]]:
    return {
        "attn.in_proj_weight": (3 * width, width),
        "attn.in_proj_bias": (3 * width,),
        "attn.out_proj.weight": (width, width),
        "attn.out_proj.bias": (width,),
        "ln_1.weight": (width,),
        "ln_1.bias": (width,),
        "mlp.c_fc.weight": (4 * width, width),
        "mlp.c_fc.bias": (4 * width,),
        "mlp.c_proj.weight": (width, 4 * width),
        "mlp.c_proj.bias": (width,),
        "ln_2.weight": (width,),
        "ln_2.bias": (width,),
    }


def openai_shapes(vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Every parameter of OpenAI's ViT CLIP (clip/model.py) at the tiny sizes, under its state-dict name."""
    grid = IMAGE // PATCH
    shapes = {
        "token_embedding.weight": (vocab_size, TEXT_WIDTH),
        "positional_embedding": (CONTEXT, TEXT_WIDTH),
        "ln_final.weight": (TEXT_WIDTH,),
        "ln_final.bias": (TEXT_WIDTH,),
        "text_projection": (TEXT_WIDTH, EMBED),
        "logit_scale": (),
        "visual.conv1.weight": (VISION_WIDTH, 3, PATCH, PATCH),
        "visual.class_embedding": (VISION_WIDTH,),
        "visual.positional_embedding": (grid * grid + 1, VISION_WIDTH),
        "visual.ln_pre.weight": (VISION_WIDTH,),
        "visual.ln_pre.bias": (VISION_WIDTH,),
        "visual.ln_post.weight": (VISION_WIDTH,),
        "visual.ln_post.bias": (VISION_WIDTH,),
        "visual.proj": (VISION_WIDTH, EMBED),
    }
    for prefix, width in (("", TEXT_WIDTH), ("visual.", VISION_WIDTH)):
        for layer in range(LAYERS):
            for name, shape in _block_shapes(width).items():
                shapes[f"{prefix}transformer.resblocks.{layer}.{name}"] = shape
    return shapes


def _kept_in_fp32(key: str) -> bool:
    """What convert_weights leaves alone: embeddings, layer norms, logit_scale."""
    return "embedding" in key or ".ln_" in key or key.startswith("ln_") or key == "logit_scale"


def random_openai_state(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in openai_shapes(vocab_size).items():
        noise = torch.randn(shape, generator=generator)
        if ".ln_" in key or key.startswith("ln_"):
            tensor = 1 + 0.2 * noise if key.endswith("weight") else 0.2 * noise
        else:
            tensor = 0.3 * noise
        state[key] = tensor if _kept_in_fp32(key) else tensor.half()
    return state


def save_base_clip(folder: Path) -> Path:
    """The ``clip`` role: tokenizer and processor (tests/tiny_clip.py), and a config of the OpenAI sizes above."""
    save_tiny_clip(folder, WORDS)
    (folder / "model.safetensors").unlink()  # the reader takes only the config from the base role
    config = json.loads((folder / "config.json").read_text())
    for tower, width in (("text_config", TEXT_WIDTH), ("vision_config", VISION_WIDTH)):
        config[tower].update(
            hidden_size=width, intermediate_size=4 * width, num_hidden_layers=LAYERS, num_attention_heads=HEADS
        )
    config["text_config"]["max_position_embeddings"] = CONTEXT
    config["projection_dim"] = EMBED
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# ------------------------------------------------------------------------------------ OpenAI CLIP's arithmetic


def _layer_norm(x, state, name):
    return F.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5)


def _attention(x, state, prefix, mask):
    """nn.MultiheadAttention over (batch, length, width): one fused input projection, scaled dot products."""
    batch, length, width = x.shape
    q, k, v = (x @ state[f"{prefix}in_proj_weight"].T + state[f"{prefix}in_proj_bias"]).chunk(3, dim=-1)
    q, k, v = (t.reshape(batch, length, HEADS, width // HEADS).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // HEADS) + mask
    mixed = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
    return mixed @ state[f"{prefix}out_proj.weight"].T + state[f"{prefix}out_proj.bias"]


def _residual_blocks(x, state, prefix, mask):
    for layer in range(LAYERS):
        block = f"{prefix}transformer.resblocks.{layer}."
        x = x + _attention(_layer_norm(x, state, block + "ln_1"), state, block + "attn.", mask)
        hidden = (
            _layer_norm(x, state, block + "ln_2") @ state[block + "mlp.c_fc.weight"].T + state[block + "mlp.c_fc.bias"]
        )
        hidden = hidden * torch.sigmoid(1.702 * hidden)  # QuickGELU
        x = x + hidden @ state[block + "mlp.c_proj.weight"].T + state[block + "mlp.c_proj.bias"]
    return x


def clip_tokenize(tokenizer, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
    """clip.tokenize(texts, truncate=True) over the tiny vocabulary: start, words, end, zero padding; a text
    longer than the context is cut and its last token made the end token. Also each end token's position."""
    start, end = tokenizer.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    rows, ends = torch.zeros(len(texts), CONTEXT, dtype=torch.long), []
    for row, text in enumerate(texts):
        tokens = [start, *tokenizer(text, add_special_tokens=False)["input_ids"], end][:CONTEXT]
        tokens[-1] = end
        rows[row, : len(tokens)] = torch.tensor(tokens)
        ends.append(len(tokens) - 1)
    return rows, ends


def encode_text(state, tokenizer, texts: list[str]) -> torch.Tensor:
    """CLIP.encode_text: raw (unnormalised) projected end-token states."""
    state = {key: tensor.float() for key, tensor in state.items()}
    ids, ends = clip_tokenize(tokenizer, texts)
    x = state["token_embedding.weight"][ids] + state["positional_embedding"]
    causal = torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1)
    x = _layer_norm(_residual_blocks(x, state, "", causal), state, "ln_final")
    return x[torch.arange(len(texts)), ends] @ state["text_projection"]


def encode_image(state, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP.encode_image (VisionTransformer.forward): raw projected class token."""
    state = {key: tensor.float() for key, tensor in state.items()}
    patches = F.conv2d(pixels, state["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    cls = state["visual.class_embedding"].expand(len(pixels), 1, -1)
    x = torch.cat([cls, patches], dim=1) + state["visual.positional_embedding"]
    x = _residual_blocks(_layer_norm(x, state, "visual.ln_pre"), state, "visual.", torch.zeros(()))
    return _layer_norm(x[:, 0], state, "visual.ln_post") @ state["visual.proj"]
