"""BLIP's image-text retrieval projections from a local checkpoint folder: the backbone Dense2Sparse reads.

As with CLIP (``mmr/encoders/clip.py``), no BLIP weights ship with this project and none download here: point
``MMR_BLIP_PATH`` at a ``BlipForImageTextRetrieval`` folder saved with ``save_pretrained`` (e.g.
Salesforce/blip-itm-base-coco), then ``load_encoder("blip-text")`` / ``load_encoder("blip-image")``. Tests
run them on a tiny BLIP they create.

An embedding is BLIP's own for retrieval (its image-text contrastive vectors, the ``use_itm_head=False``
path), computed as BLIP's retrieval evaluation does: the text encoder's [CLS] state through ``text_proj``
(texts cut at 35 tokens), the image's class token through ``vision_proj``, each L2-normalised, so text and
image vectors share one space. Images are resized to a square without a crop (BLIP's test transform), and
not padded unless asked.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from mmr.config import BLIP_PATH_VARIABLE, Settings
from mmr.device import resolve_device
from mmr.encoders.towers import ProjectedTextTower, ProjectedVisionTower, configured_checkpoint

TEXT_MAX_LENGTH = 35  # BLIP's retrieval evaluation tokenises texts to 35 tokens


def blip_checkpoint_path() -> Path:
    """The folder ``Settings.blip_path`` (``MMR_BLIP_PATH``) names; a clear error when it is unset or holds no
    BLIP checkpoint."""
    return configured_checkpoint(Settings().blip_path, BLIP_PATH_VARIABLE, "BLIP")


@lru_cache(maxsize=2)
def _load(path: str, device: str):
    """Model, tokenizer and image processor, loaded once per folder and device for both towers."""
    from transformers import AutoTokenizer, BlipForImageTextRetrieval, BlipImageProcessorPil

    model = BlipForImageTextRetrieval.from_pretrained(path).to(device).eval()
    # the PIL processor: the default one needs torchvision, which this project does not install
    return model, AutoTokenizer.from_pretrained(path), BlipImageProcessorPil.from_pretrained(path)


class BLIPTextEncoder(ProjectedTextTower):
    def __init__(
        self,
        name: str,
        path: str | Path,
        max_length: int = TEXT_MAX_LENGTH,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        self.name, self.batch_size, self.path, self.max_length = name, batch_size, Path(path), max_length
        self.device = resolve_device(device)
        self.model, self.tokenizer, _ = _load(str(path), self.device)
        self.dim = int(self.model.config.image_text_hidden_size)

    def project(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # the text encoder alone, without the image's cross-attention: the unimodal [CLS] state BLIP contrasts
        states = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.model.text_proj(states.last_hidden_state[:, 0])


class BLIPImageEncoder(ProjectedVisionTower):
    """BLIP's vision tower as a backbone: the pooled vector is the projected class token (BLIP's image
    embedding for retrieval), the grid its last layer's patch states; BLIP has no classifier."""

    def __init__(
        self,
        name: str,
        path: str | Path,
        pad_images: bool = False,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        # BLIP's processor resizes to a square without cropping, so nothing is cut off unpadded; a wide drawing
        # is squashed instead, as BLIP's own evaluation squashes photographs. pad_images keeps its proportions.
        self.name, self.batch_size, self.path, self.pad_images = name, batch_size, Path(path), pad_images
        self.device = resolve_device(device)
        self.model, _, self.processor = _load(str(path), self.device)
        self.dim = int(self.model.config.image_text_hidden_size)
        self.read_grid_size(self.model.config.vision_config)

    def project(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # last_hidden_state, not pooler_output: transformers' BLIP applies the post-layernorm to its pooler
        # output a second time, and BLIP's retrieval reads the class token of last_hidden_state
        states = self.model.vision_model(pixel_values=pixels).last_hidden_state
        return self.model.vision_proj(states[:, 0]), states[:, 1:]
