"""The retriever interface and the shared, loaded-once resources retrievers are built from.

A retriever is built once by a command (``python -m mmr build`` / ``train``) into a folder of
``index_store/`` and loaded from it at app start. ``search`` must accept text queries, image
queries and corpora that mix both modalities.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from PIL import Image

from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.encoders import Encoder, l2_normalise, load_encoder
from mmr.encoders.base import ImageFeatures, TextEncoder
from mmr.encoders.cache import CachedTextEncoder
from mmr.encoders.registry import STAND_INS
from mmr.index import FLAT, IndexParams
from mmr.types import Document, Hit, Query

GRID_ALWAYS_FROM = 256  # documents; smaller sets (a query, a test's few images) are encoded as asked


class ImageView(Protocol):
    """A reproducible transform of an image, named by ``key`` (part of its feature cache's name)."""

    key: str

    def __call__(self, image: Image.Image, path: str) -> Image.Image: ...


def dense_query_vector(query: Query, embed_text, embed_image) -> np.ndarray:
    """A dense retriever's query vector: its text's and its image's (``embed_text(str)``,
    ``embed_image(PIL image)``, each one vector), summed and L2-normalised; a query may carry either or both."""
    parts = []
    if query.text:
        parts.append(embed_text(query.text))
    if query.image is not None:
        parts.append(embed_image(query.image))
    if not parts:
        raise ValueError("a query needs text or an image")
    return l2_normalise(np.sum(parts, axis=0))


class Retriever(ABC):
    name: str

    @abstractmethod
    def search(self, query: Query, k: int = 10) -> list[Hit]: ...

    def search_many(self, queries: Sequence[Query], k: int = 10) -> list[list[Hit]]:
        return [self.search(query, k) for query in queries]

    def explain(self, query: Query, doc_id: str) -> dict | None:
        """Why ``doc_id`` matched ``query``, where the method can say (e.g. shared sparse terms)."""
        return None

    @classmethod
    @abstractmethod
    def build(cls, corpus: Corpus, resources: Resources, folder: Path) -> Retriever: ...

    @classmethod
    @abstractmethod
    def load(cls, corpus: Corpus, resources: Resources, folder: Path) -> Retriever: ...


class DenseRetriever(Retriever):
    """A retriever over a faiss ``DenseIndex``. How its index is built is part of the class, as data: a
    faiss factory string and the search parameters that go with it (e.g. "IVF256,Flat" with
    ``{"nprobe": 16}``). Flat, exact, unless a subclass names another."""

    index_factory: ClassVar[str] = FLAT
    index_search_params: ClassVar[dict] = {}

    @classmethod
    def dense_params(cls, encoder: str, dim: int, corpus: Corpus) -> IndexParams:
        return IndexParams(
            cls.name,
            encoder,
            dim,
            corpus.name,
            corpus.fingerprint,
            faiss_factory=cls.index_factory,
            search_params=dict(cls.index_search_params),
        )


class Resources:
    """Loaded encoders and cached features, shared by every retriever in a process."""

    def __init__(self, settings: Settings | None = None, device: str | None = None):
        self.settings = settings or Settings()
        self.device = device if device is not None else self.settings.device
        self._encoders: dict[str, Encoder] = {}
        self._extras: dict[str, object] = {}
        self._lock = threading.Lock()

    def with_settings(self, settings: Settings) -> Resources:
        """The same loaded encoders under other settings (a training run's staged release folders)."""
        view = Resources(settings, self.device)
        view._encoders, view._extras, view._lock = self._encoders, self._extras, self._lock
        return view

    def encoder(self, name: str) -> Encoder:
        """The shared, frozen encoder ``name``; a text encoder's large batches are cached on disk."""
        with self._lock:
            if name not in self._encoders:
                encoder = load_encoder(name, device=self.device)
                if isinstance(encoder, TextEncoder):
                    encoder = CachedTextEncoder(encoder, self.settings.features_dir / name)
                self._encoders[name] = encoder
            return self._encoders[name]

    def verbaliser(self, text_encoder: str = STAND_INS.text):
        from mmr.encoders.verbaliser import ImageNetVerbaliser

        encoder = self.encoder(text_encoder)
        return self.shared(f"verbaliser:{text_encoder}", lambda: ImageNetVerbaliser(encoder))

    def shared(self, key: str, make):
        """The object under ``key``, made by ``make()`` the first time any retriever of this process asks."""
        with self._lock:
            if key not in self._extras:
                self._extras[key] = make()
            return self._extras[key]

    def image_features(
        self, documents: Sequence[Document], encoder_name: str, keep_grid: bool = False, view: ImageView | None = None
    ) -> ImageFeatures:
        """Features of image documents, cached on disk by encoder and image content fingerprint.

        ``view`` encodes each image as that view transforms it (an augmented copy for training) instead.
        """
        from mmr.corpus.images import load_image

        view_key = view.key if view is not None else ""
        # A large set is encoded with its grid whatever was asked: the same forward pass gives both, and the
        # methods that read the grid (gMLP, MARVEL, CIEA) ask for the sets the others asked for first.
        with_grid_now = keep_grid or (view is None and len(documents) >= GRID_ALWAYS_FROM)
        folder = self.settings.features_dir / encoder_name
        kinds = (True,) if keep_grid else (True, False)  # a grid cache holds pooled features and logits too
        for path in (folder / f"{_documents_key(documents, grid, view_key)}.npz" for grid in kinds):
            if path.exists():
                with np.load(path, allow_pickle=False) as data:
                    grid = data["grid"] if keep_grid else None
                    logits = data["logits"] if "logits" in data.files else None  # a backbone without a classifier
                    return ImageFeatures(data["pooled"], logits, grid)
        key = _documents_key(documents, with_grid_now, view_key)
        path = folder / f"{key}.npz"
        encoder = self.encoder(encoder_name)
        loader = load_image if view is None else lambda path: view(load_image(path), path)
        images = LazyImages([doc.image_path for doc in documents], loader)
        label = f"{encoder_name} features" + (f" ({view_key})" if view_key else "")
        features = encoder.features(images, keep_grid=with_grid_now, progress=label)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"pooled": features.pooled}
        if features.logits is not None:
            arrays["logits"] = features.logits
        if with_grid_now:
            arrays["grid"] = features.grid.astype(np.float16)  # halves a large cache; ample precision
        # Written under a temporary name and renamed: a reader never sees half a cache file.
        tmp = folder / f"{key}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(path)
        (folder / f"{key}.ids.json").write_text(json.dumps([doc.id for doc in documents]))
        if not keep_grid:
            return ImageFeatures(features.pooled, features.logits, None)
        return features


class LazyImages(Sequence):
    """Loads images as batches ask for them, so a corpus never sits decoded in memory at once."""

    def __init__(self, paths: list[str], loader):
        self.paths, self.loader = paths, loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self.loader(path) for path in self.paths[item]]
        return self.loader(self.paths[item])


def _documents_key(documents: Sequence[Document], keep_grid: bool, view_key: str = "") -> str:
    digest = hashlib.sha256((b"grid" if keep_grid else b"pooled") + view_key.encode())
    for doc in documents:
        stat = Path(doc.image_path).stat()
        digest.update(f"{doc.id}\0{doc.image_path}\0{stat.st_size}\0{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]
