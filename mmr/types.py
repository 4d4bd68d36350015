"""Small typed values that flow between corpus, encoders, retrievers, the app and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

Modality = Literal["text", "image"]
MODALITIES: tuple[Modality, ...] = ("text", "image")


@dataclass(frozen=True)
class Document:
    """One retrievable item. ``text`` of an image document is its caption, which retrievers
    that claim to search *images* must not read (see ``Document.visible_text``)."""

    id: str
    modality: Modality
    text: str = ""
    image_path: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.modality == "image" and not self.image_path:
            raise ValueError(f"image document {self.id!r} has no image_path")
        if self.modality == "text" and not self.text:
            raise ValueError(f"text document {self.id!r} has no text")


@dataclass(frozen=True)
class Query:
    """A text query, an image query, or both. ``image_sha`` identifies an uploaded image."""

    text: str | None = None
    image: Image.Image | None = None
    image_sha: str | None = None

    @property
    def modality(self) -> Modality:
        return "image" if self.image is not None else "text"

    @property
    def key(self) -> str:
        """What identifies the query in ratings and run files."""
        return f"image:{self.image_sha}" if self.image is not None else f"text:{self.text}"


@dataclass(frozen=True)
class Hit:
    doc_id: str
    score: float
    rank: int  # 1-based
