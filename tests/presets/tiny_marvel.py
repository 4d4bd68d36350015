"""A tiny MARVEL (or CIEA) checkpoint folder in the published layout: the stand-in for OpenMatch/marvel-*-webqa.

``model.best.pt`` = ``{"epoch", "model"}`` keyed as MARVEL's ``MultiModal`` saves it (``clip_model.*``,
``t5_model.*``, ``projector.*``, ``logit_scale``, CIEA's ``information_extract.*``), with the stale CLIP
``position_ids`` buffer transformers 4.22 saved; ``text/`` holds the base T5 tokenizer (without MARVEL's three
markers, as OpenMatch/t5-ance ships it) and config, ``vision/`` a tiny CLIP with its image processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tests.tiny_clip import save_tiny_clip
from tests.tiny_t5 import t5_tokenizer

WORDS = ["caption", ":", "a", "red", "blue", "stamp", "bird", "tree", "what", "is", "the", "flower", "green"]
MARKERS = ["<im_patch>", "<im_start>", "<im_end>"]
CIEA_FEED_FORWARD = 32  # CIEA's is 2048; the reader takes it from the checkpoint


@dataclass
class TinyMarvel:
    folder: Path
    t5: nn.Module  # transformers.T5Model
    clip: nn.Module  # transformers.CLIPVisionModel
    projector: nn.Linear
    state: dict[str, torch.Tensor]  # what model.best.pt holds under "model"


def save_tiny_marvel(folder: Path, ciea: bool = False, seed: int = 0) -> TinyMarvel:
    from transformers import CLIPVisionConfig, CLIPVisionModel, T5Config, T5Model

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = t5_tokenizer(WORDS)
    tokenizer.save_pretrained(folder / "text")
    # like t5-ance, the config's vocabulary is larger than the tokenizer's: MARVEL resized to the tokenizer's
    base = dict(d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, decoder_start_token_id=0)
    T5Config(vocab_size=len(tokenizer) + 9, **base).save_pretrained(folder / "text")
    save_tiny_clip(folder / "vision", ["red"], seed=seed)

    torch.manual_seed(seed)
    t5 = T5Model(T5Config(vocab_size=len(tokenizer) + len(MARKERS), **base)).eval()
    clip = CLIPVisionModel(CLIPVisionConfig.from_pretrained(folder / "vision")).eval()
    projector = nn.Linear(16, 16)
    if ciea:  # patches share a direction with the <pad> embedding, so CIEA's weights change if padding counts
        direction = torch.randn(16)
        with torch.no_grad():
            projector.bias.copy_(direction * 6 / direction.norm())
            t5.shared.weight[tokenizer.pad_token_id] = direction
    state = {f"t5_model.{key}": value for key, value in t5.state_dict().items()}
    state |= {f"clip_model.{key}": value for key, value in clip.state_dict().items()}
    state |= {f"projector.{key}": value for key, value in projector.state_dict().items()}
    state["logit_scale"] = torch.tensor(4.6052)
    state["clip_model.vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    if ciea:
        width, extractor = 16, {}
        for name in ("q_linear", "k_linear", "v_linear", "out_linear"):
            extractor[f"attention.{name}.weight"] = torch.randn(width, width) * 0.3
            extractor[f"attention.{name}.bias"] = torch.randn(width) * 0.1
        extractor["feed_forward.0.weight"] = torch.randn(CIEA_FEED_FORWARD, width) * 0.3
        extractor["feed_forward.0.bias"] = torch.randn(CIEA_FEED_FORWARD) * 0.1
        extractor["feed_forward.2.weight"] = torch.randn(width, CIEA_FEED_FORWARD) * 0.3
        extractor["feed_forward.2.bias"] = torch.randn(width) * 0.1
        extractor["layer_norm.weight"] = 1 + torch.randn(width) * 0.1
        extractor["layer_norm.bias"] = torch.randn(width) * 0.1
        state |= {f"information_extract.{key}": value for key, value in extractor.items()}
    save_state(folder, state)
    return TinyMarvel(folder, t5, clip, projector, state)


def save_state(folder: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save({"epoch": 3, "model": state}, folder / "model.best.pt")
