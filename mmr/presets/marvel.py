"""MARVEL's published checkpoints (OpenMatch/MARVEL, ``ANCE/multi_model.py``) and CIEA's (sysu18364004/CIEA,
its fork) as preset models: T5-ANCE reads text, CLIP's vision tower sees an image as patch tokens in T5's
input, and one decoder step gives the vector.

- Queries and text documents: the raw text, at most ``text_max_length`` tokens.
- An image with a caption: ``<im_start> <im_patch>×P<im_end> caption: …`` (P = the vision tower's patch
  count), whose P patch-token embeddings are replaced by the projected patches (CLIP's last hidden states
  without the class token, no post-layernorm); it is cut at ``text_max_length + P + 2`` tokens, as the code
  derives it (179 for ViT-B/32).
- An image without a caption (an image query too): the P projected patches alone, as the code's image-only
  path feeds them, without markers or mask.
- The vector: T5's decoder state at one step from token 0, L2-normalised.
CIEA differs only for captioned images: its extractor re-weights the patches against the caption first.

``model.best.pt`` is ``{"epoch", "model": state dict}`` keyed by the published module's attributes
(``clip_model``, ``t5_model``, ``projector``, ``logit_scale``, CIEA's ``information_extract``); the T5 config
and tokenizer come from the ``text`` base role, CLIP's vision config and image processor from ``vision``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from mmr.corpus.images import composite_on_white, pad_to_square
from mmr.encoders.base import batched
from mmr.encoders.clip import checkpoint_tag
from mmr.presets.base import PresetFilesError, PresetModel, PresetSpec
from mmr.presets.ciea_extractor import InformationExtractor, patch_weights

# MARVEL's utils.py adds them in this order, so they take the next three ids after T5's vocabulary
IMAGE_PATCH, IMAGE_START, IMAGE_END = "<im_patch>", "<im_start>", "<im_end>"
BATCH = 16
# saved under transformers 4.22, where these buffers were persistent; newer versions neither save nor expect them
STALE_BUFFER = "embeddings.position_ids"
SHARED_EMBEDDINGS = "t5_model.shared.weight"
EMBEDDING_ALIASES = ("t5_model.encoder.embed_tokens.weight", "t5_model.decoder.embed_tokens.weight")


class PresetLayoutError(ValueError):
    """A checkpoint whose keys or shapes are not the published model's."""


class MarvelNetwork(nn.Module):
    """The published ``MultiModal`` module's parts under its attribute names, so its state dict loads as saved
    (``state``, the checkpoint's, gives the sizes no config holds: CIEA's feed-forward width)."""

    image_start = IMAGE_START + " "  # MARVEL's template puts a space after the start marker

    def __init__(self, t5_config, vision_config, state: dict) -> None:
        from transformers import CLIPVisionModel, T5Model

        super().__init__()
        self.clip_model = CLIPVisionModel(vision_config)
        self.t5_model = T5Model(t5_config)
        self.projector = nn.Linear(vision_config.hidden_size, t5_config.d_model)
        self.logit_scale = nn.Parameter(torch.ones([]))  # trained with, unused to encode

    def patches(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projector(self.clip_model(pixel_values=pixels).last_hidden_state[:, 1:, :])

    def splice(self, patches: torch.Tensor, token_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The captioned image's input: the start marker, the patches, then the rest of the template."""
        count = patches.shape[1]
        return torch.cat((token_embeds[:, :1], patches, token_embeds[:, count + 1 :]), dim=1)

    def represent(self, embeds: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        start = torch.zeros((embeds.shape[0], 1), dtype=torch.long, device=embeds.device)
        out = self.t5_model(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=start, use_cache=False)
        return out.last_hidden_state[:, 0]


class CieaNetwork(MarvelNetwork):
    """MARVEL plus CIEA's extractor, applied to a captioned image's patches before the splice."""

    image_start = IMAGE_START  # CIEA's template has no space after the start marker

    def __init__(self, t5_config, vision_config, state: dict) -> None:
        super().__init__(t5_config, vision_config, state)
        key = "information_extract.feed_forward.0.weight"
        if key not in state:
            raise PresetLayoutError(f"a CIEA checkpoint has {key} (its extractor); this one has none")
        self.information_extract = InformationExtractor(t5_config.d_model, state[key].shape[0])

    def splice(self, patches: torch.Tensor, token_embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        count = patches.shape[1]
        weights = patch_weights(patches, token_embeds[:, count + 1 :], mask[:, count + 1 :])
        return super().splice(self.information_extract(patches, weights), token_embeds, mask)


class MarvelModel(PresetModel):
    def __init__(self, spec: PresetSpec, network: MarvelNetwork, tokenizer, processor, tag: str, device: str):
        self.name, self.spec, self.network, self.device = spec.name, spec, network, device
        self.tokenizer, self.processor, self._tag = tokenizer, processor, tag
        self.dim = int(network.t5_model.config.d_model)
        vision = network.clip_model.config
        self.patch_count = (int(vision.image_size) // int(vision.patch_size)) ** 2
        self.text_max_length = int(spec.options["text_max_length"])
        self.caption_prefix = spec.options["caption_prefix"]
        self.pad_images = bool(spec.options.get("pad_to_square", False))
        self.patch_id, self.start_id = tokenizer.convert_tokens_to_ids([IMAGE_PATCH, IMAGE_START])

    def tag(self) -> str:
        return self._tag

    def _tokens(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {key: batch[key].to(self.device) for key in ("input_ids", "attention_mask")}

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        # MARVEL's code hands the image to CLIP's processor as it is (shortest side resized, centre-cropped), the
        # default here; pad_to_square pads it on white first, as this project's CLIP does, to keep a wide image's edges
        images = [pad_to_square(image) if self.pad_images else composite_on_white(image) for image in images]
        return self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)

    @torch.inference_mode()
    def _encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        parts = []
        for chunk in batched(list(texts), BATCH):
            tokens = self._tokens(chunk, self.text_max_length)
            embeds = self.network.t5_model.get_input_embeddings()(tokens["input_ids"])
            parts.append(self.network.represent(embeds, tokens["attention_mask"]))
        return _normalised(parts, self.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode_texts(texts)

    def encode_text_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode_texts(texts)

    def encode_image_documents(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        captioned = [i for i, caption in enumerate(captions) if caption.strip()]
        bare = [i for i, caption in enumerate(captions) if not caption.strip()]
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        if captioned:
            out[captioned] = self._encode_captioned([images[i] for i in captioned], [captions[i] for i in captioned])
        if bare:
            out[bare] = self._encode_bare([images[i] for i in bare])
        return out

    @torch.inference_mode()
    def _encode_bare(self, images: Sequence[Image.Image]) -> np.ndarray:
        parts = [
            self.network.represent(self.network.patches(self._pixels(chunk)), None) for chunk in batched(images, BATCH)
        ]
        return _normalised(parts, self.dim)

    @torch.inference_mode()
    def _encode_captioned(self, images: Sequence[Image.Image], captions: Sequence[str]) -> np.ndarray:
        markers = self.network.image_start + IMAGE_PATCH * self.patch_count + IMAGE_END + self.caption_prefix
        max_length = self.text_max_length + self.patch_count + 2
        parts = []
        for start in range(0, len(images), BATCH):
            tokens = self._tokens([markers + c for c in captions[start : start + BATCH]], max_length)
            ids = tokens["input_ids"]
            if not (ids[:, 0] == self.start_id).all() or not (ids[:, 1 : self.patch_count + 1] == self.patch_id).all():
                raise ValueError(
                    f"the tokenizer did not give {IMAGE_START} then {self.patch_count} {IMAGE_PATCH} tokens first; "
                    "the patches would land on other tokens"
                )
            patches = self.network.patches(self._pixels(images[start : start + BATCH]))
            embeds = self.network.t5_model.get_input_embeddings()(ids)
            mask = tokens["attention_mask"]
            parts.append(self.network.represent(self.network.splice(patches, embeds, mask), mask))
        return _normalised(parts, self.dim)


def _normalised(parts: list[torch.Tensor], dim: int) -> np.ndarray:
    if not parts:
        return np.zeros((0, dim), dtype=np.float32)
    vectors = torch.nn.functional.normalize(torch.cat(parts).float(), dim=-1)
    return vectors.cpu().numpy().astype(np.float32)


def _published_state(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise PresetLayoutError(f"{path} is not MARVEL's {{'epoch', 'model': state dict}}")
    return {key: value for key, value in checkpoint["model"].items() if not key.endswith(STALE_BUFFER)}


def _load_strictly(network: MarvelNetwork, state: dict[str, torch.Tensor], path: Path) -> None:
    """Every key the network has, none it lacks; T5's two token-embedding aliases follow ``shared``, whether
    or not the file repeats them."""
    expected = network.state_dict().keys()
    state = {key: value for key, value in state.items() if key not in EMBEDDING_ALIASES or key in expected}
    for alias in EMBEDDING_ALIASES:
        if alias in expected and SHARED_EMBEDDINGS in state:
            state.setdefault(alias, state[SHARED_EMBEDDINGS])
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise PresetLayoutError(
            f"{path} is not this model's layout: missing {missing[:8]} ({len(missing)}), "
            f"unexpected {unexpected[:8]} ({len(unexpected)})"
        )
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:  # a shape that is not the configs' (another base model)
        raise PresetLayoutError(f"{path} does not fit the base models' configs: {error}") from error


def _read(spec: PresetSpec, folder: Path, device: str, network_class: type[MarvelNetwork]) -> MarvelModel:
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPVisionConfig, T5Config

    text, vision = spec.base(folder, "text"), spec.base(folder, "vision")
    tokenizer = AutoTokenizer.from_pretrained(text)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_PATCH, IMAGE_START, IMAGE_END]})
    path = folder / spec.checkpoint
    state = _published_state(path)
    if SHARED_EMBEDDINGS not in state:
        raise PresetLayoutError(f"{path} has no {SHARED_EMBEDDINGS}: not a MARVEL state dict")
    t5_config = T5Config.from_pretrained(text)
    # the code resized T5's embeddings to the tokenizer with its three markers, below the config's vocab size
    t5_config.vocab_size = len(tokenizer)
    rows = state[SHARED_EMBEDDINGS].shape[0]
    if rows != len(tokenizer):
        raise PresetFilesError(
            f"{path} embeds {rows} tokens but the tokenizer at {text} has {len(tokenizer)} with MARVEL's three "
            "markers: the text base is not the one the checkpoint was trained from"
        )
    network = network_class(t5_config, CLIPVisionConfig.from_pretrained(vision), state)
    _load_strictly(network, state, path)
    network = network.to(device).eval()
    processor = CLIPImageProcessorPil.from_pretrained(vision)  # no torchvision here
    padding = "padded" if spec.options.get("pad_to_square", False) else "cropped"
    tag = f"{spec.name}-{checkpoint_tag(folder)}-{padding}"
    return MarvelModel(spec, network, tokenizer, processor, tag, device)


def read_marvel_checkpoint(spec: PresetSpec, folder: Path, device: str) -> MarvelModel:
    return _read(spec, folder, device, MarvelNetwork)


def read_ciea_checkpoint(spec: PresetSpec, folder: Path, device: str) -> MarvelModel:
    return _read(spec, folder, device, CieaNetwork)
