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
from functools import lru_cache
from pathlib import Path

import torch

from mmr.config import CLIP_PATH_VARIABLE, Settings
from mmr.device import resolve_device
from mmr.encoders.towers import ProjectedTextTower, ProjectedVisionTower, configured_checkpoint


def clip_checkpoint_path() -> Path:
    """The folder ``Settings.clip_path`` (``MMR_CLIP_PATH``) names; a clear error when it is unset or holds no
    CLIP checkpoint."""
    return configured_checkpoint(Settings().clip_path, CLIP_PATH_VARIABLE, "CLIP")


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


class CLIPTextEncoder(ProjectedTextTower):
    def __init__(self, name: str, path: str | Path, batch_size: int = 64, device: str | None = None) -> None:
        self.name, self.batch_size, self.path = name, batch_size, Path(path)
        self.device = resolve_device(device)
        self.model, self.tokenizer, _ = _load(str(path), self.device)
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    def project(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.model.text_projection(pooled.pooler_output)  # the end-of-text state


class CLIPImageEncoder(ProjectedVisionTower):
    """CLIP's vision tower as a backbone: the pooled vector is the projected class token (CLIP's image
    embedding), the grid its last layer's patch states; CLIP has no classifier."""

    # Padded to a square on white first, as the EfficientNet path does: CLIP's centre crop would otherwise
    # cut the edges off a wide or tall drawing.
    pad_images = True

    def __init__(self, name: str, path: str | Path, batch_size: int = 32, device: str | None = None) -> None:
        self.name, self.batch_size, self.path = name, batch_size, Path(path)
        self.device = resolve_device(device)
        self.model, _, self.processor = _load(str(path), self.device)
        self.dim = int(self.model.config.projection_dim)
        self.read_grid_size(self.model.config.vision_config)

    def project(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.model.vision_model(pixel_values=pixels)
        # pooler_output is the class token after CLIP's post-layernorm; the grid leaves the class token out
        return self.model.visual_projection(states.pooler_output), states.last_hidden_state[:, 1:]
