"""CLIP text and image towers from a local checkpoint folder: the backbone UniVL-DR, MARVEL and CIEA use.

Model hubs are unreachable on the machines this project is built on, so no CLIP weights ship with it
and no served model uses these encoders. They are the loading code for a published checkpoint (e.g.
openai/clip-vit-base-patch32 saved with ``save_pretrained``) on a machine that has one: point
``MMR_CLIP_PATH`` at the folder, then ``load_encoder("clip-text")`` / ``load_encoder("clip-image")``.
Tests run them on a tiny CLIP they create.

An embedding is CLIP's own: the tower's pooled state (the end-of-text token; the image's class token)
through its projection, L2-normalised, so text and image vectors share one space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmr.config import CLIP_PATH_VARIABLE, Settings
from mmr.corpus.images import pad_to_square
from mmr.device import resolve_device
from mmr.encoders.base import ImageFeatures, TextEncoder, VisionBackbone, batched, l2_normalise


def clip_checkpoint_path() -> Path:
    """The folder ``Settings.clip_path`` (``MMR_CLIP_PATH``) names; a clear error when it is unset or holds no
    CLIP checkpoint."""
    path = Settings().clip_path
    if path is None:
        raise FileNotFoundError(
            f"no CLIP checkpoint: set {CLIP_PATH_VARIABLE} to a local folder holding one (config.json, weights, "
            "tokenizer and preprocessor files, as save_pretrained writes them); none ships with this project"
        )
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{CLIP_PATH_VARIABLE}={path} has no config.json: not a saved CLIP checkpoint")
    return path


def checkpoint_tag(path: str | Path, sample: int = 1 << 20) -> str:
    """A short fingerprint of a checkpoint folder, so that an index built with one checkpoint refuses to
    load against another: each file's name and size and its first and last ``sample`` bytes (weights of two
    trainings differ there; hashing whole gigabytes at every start would not be worth it)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if not file.is_file():
            continue
        size = file.stat().st_size
        digest.update(f"{file.name}\0{size}\n".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(sample))
            if size > sample:
                handle.seek(max(sample, size - sample))
                digest.update(handle.read(sample))
    return digest.hexdigest()[:12]


@lru_cache(maxsize=2)
def _load(path: str, device: str):
    """Model, tokenizer and image processor, loaded once per folder and device for both towers."""
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizerFast

    model = CLIPModel.from_pretrained(path).to(device).eval()
    # the PIL processor: the default one needs torchvision, which this project does not install
    return model, CLIPTokenizerFast.from_pretrained(path), CLIPImageProcessorPil.from_pretrained(path)


class CLIPTextEncoder(TextEncoder):
    def __init__(self, name: str, path: str | Path, batch_size: int = 64, device: str | None = None) -> None:
        self.name, self.batch_size, self.path = name, batch_size, Path(path)
        self.device = resolve_device(device)
        self.model, self.tokenizer, _ = _load(str(path), self.device)
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def encode(self, items: Sequence[str], batch_size: int | None = None, progress: bool | str = False) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for chunk in batched(list(items), batch_size or self.batch_size, progress):
            batch = self.tokenizer(
                list(chunk), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            pooled = self.model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            parts.append(self.model.text_projection(pooled.pooler_output).float().cpu().numpy())
        return l2_normalise(np.concatenate(parts))


class CLIPImageEncoder(VisionBackbone):
    """CLIP's vision tower as a backbone: the pooled vector is the projected class token (CLIP's image
    embedding), the grid its last layer's patch states; CLIP has no classifier."""

    def __init__(self, name: str, path: str | Path, batch_size: int = 32, device: str | None = None) -> None:
        self.name, self.batch_size, self.path = name, batch_size, Path(path)
        self.device = resolve_device(device)
        self.model, _, self.processor = _load(str(path), self.device)
        self.dim = int(self.model.config.projection_dim)
        vision = self.model.config.vision_config
        self.grid_dim = int(vision.hidden_size)
        self.grid_tokens = (int(vision.image_size) // int(vision.patch_size)) ** 2

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        # Padded to a square on white first, as the EfficientNet path does: CLIP's centre crop would
        # otherwise cut the edges off a wide or tall drawing.
        squares = [pad_to_square(image) for image in images]  # transparency composited on white too
        return self.processor(images=squares, return_tensors="pt")["pixel_values"].to(self.device)

    @torch.inference_mode()
    def features(
        self,
        images: Sequence[Image.Image],
        keep_grid: bool = False,
        batch_size: int | None = None,
        progress: bool | str = False,
    ) -> ImageFeatures:
        pooled, grids = [], []
        # sliced batch by batch: a lazy sequence of images is never decoded all at once
        for chunk in batched(images, batch_size or self.batch_size, progress):
            states = self.model.vision_model(pixel_values=self.pixels(chunk))
            pooled.append(self.model.visual_projection(states.pooler_output).float().cpu().numpy())
            if keep_grid:
                grids.append(states.last_hidden_state[:, 1:].float().cpu().numpy())  # the class token left out
        if not pooled:
            empty_grid = np.zeros((0, self.grid_tokens, self.grid_dim), np.float32) if keep_grid else None
            return ImageFeatures(np.zeros((0, self.dim), np.float32), None, empty_grid)
        return ImageFeatures(np.concatenate(pooled), None, np.concatenate(grids) if keep_grid else None)

    def encode(
        self, items: Sequence[Image.Image], batch_size: int | None = None, progress: bool | str = False
    ) -> np.ndarray:
        return l2_normalise(self.features(items, batch_size=batch_size, progress=progress).pooled)

    def patch_states(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, patches, hidden): what MARVEL projects into its visual tokens (``features(...).grid``)."""
        return self.features(images, keep_grid=True).grid
