"""What CLIP's and BLIP's towers share: a transformer whose embedding is one of its states through a linear
projection, loaded from a local checkpoint folder that a ``Settings`` field names.

A family says which state and which projection (``project``); tokenising, image preparation, batching and
normalisation are written once here, so the two families cannot drift apart in them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmr.corpus.images import composite_on_white, pad_to_square
from mmr.encoders.base import ImageFeatures, TextEncoder, VisionBackbone, batched, l2_normalise


def configured_checkpoint(path: Path | None, variable: str, family: str) -> Path:
    """``path`` (a ``Settings`` field read from ``variable``), or a clear error when it is unset or holds no
    saved checkpoint: the weights are never downloaded, so the message says what to put where."""
    if path is None:
        raise FileNotFoundError(
            f"no {family} checkpoint: set {variable} to a local folder holding one (config.json, weights, "
            "tokenizer and preprocessor files, as save_pretrained writes them); none ships with this project"
        )
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{variable}={path} has no config.json: not a saved {family} checkpoint")
    return path


class ProjectedTextTower(TextEncoder):
    """Texts cut at ``max_length`` tokens, one batch at a time through ``project``, then L2-normalised."""

    tokenizer: object
    max_length: int
    batch_size: int

    @abstractmethod
    def project(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(b, dim): the family's pooled state through its projection, not normalised."""

    @torch.inference_mode()
    def encode(self, items: Sequence[str], batch_size: int | None = None, progress: bool | str = False) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for chunk in batched(list(items), batch_size or self.batch_size, progress):
            batch = self.tokenizer(
                list(chunk), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            parts.append(self.project(batch["input_ids"], batch["attention_mask"]).float().cpu().numpy())
        return l2_normalise(np.concatenate(parts))


class ProjectedVisionTower(VisionBackbone):
    """A vision transformer as a backbone: the pooled vector is its class token through the projection (the
    family's image embedding), the grid its last layer's patch states; it has no classifier."""

    processor: object
    batch_size: int
    # Whether to pad an image to a white square before the processor resizes it (each family says why);
    # transparency is composited on white either way.
    pad_images: bool

    @abstractmethod
    def project(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, dim) the projected class token, not normalised, and (b, grid_tokens, grid_dim) the patch states."""

    def read_grid_size(self, vision_config) -> None:
        self.grid_dim = int(vision_config.hidden_size)
        self.grid_tokens = (int(vision_config.image_size) // int(vision_config.patch_size)) ** 2

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        prepare = pad_to_square if self.pad_images else composite_on_white
        prepared = [prepare(image) for image in images]
        return self.processor(images=prepared, return_tensors="pt")["pixel_values"].to(self.device)

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
            projected, patches = self.project(self.pixels(chunk))
            pooled.append(projected.float().cpu().numpy())
            if keep_grid:
                grids.append(patches.float().cpu().numpy())
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
