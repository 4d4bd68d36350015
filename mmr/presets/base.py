"""What a published checkpoint becomes once read: a ``PresetModel`` that encodes queries and documents.

A preset is inference only: the papers trained these weights, this project loads them through the published
layout (key names, prefixes, preprocessing) and searches with them beside the stand-ins trained here. Each
preset names its folder through an environment variable; the folder holds the checkpoint as published and,
for each base model the checkpoint builds on (a tokenizer, a CLIP processor, a config), a subfolder named by
its role, saved with ``save_pretrained``. Where a role's subfolder is missing, the base model is read from the
hub id the spec names (a machine with the hub; never here).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from PIL import Image


class PresetFilesError(FileNotFoundError):
    """A preset's folder is unset, missing, or lacks a file the published layout has."""


@dataclass(frozen=True)
class PresetSpec:
    name: str  # the retriever's name in the app
    label: str
    family: str  # the published method
    reader: str  # "module:function(spec, folder, device) -> PresetModel"
    variable: str  # the environment variable naming the local folder
    source: str  # where the files come from, for the README and for errors
    checkpoint: str  # the file or folder inside it that holds the published weights
    bases: dict[str, str] = field(default_factory=dict)  # role -> hub id, or a subfolder of the same name
    options: dict = field(default_factory=dict)  # preprocessing the paper's code fixes (max lengths, templates)

    def folder(self) -> Path:
        value = os.environ.get(self.variable)
        if not value:
            raise PresetFilesError(f"set {self.variable} to a folder holding {self.checkpoint} ({self.source})")
        folder = Path(value).expanduser()
        if not (folder / self.checkpoint).exists():
            raise PresetFilesError(f"{self.variable}={folder} has no {self.checkpoint}; it comes from {self.source}")
        return folder

    def base(self, folder: Path, role: str) -> str:
        """Where to read the base model playing ``role``: ``folder/role`` when it is there, else its hub id."""
        local = folder / role
        return str(local) if local.is_dir() else self.bases[role]


class PresetModel(ABC):
    """A published model as a dual encoder. Dense models return L2-normalised float32 rows (n, dim); sparse
    ones (``sparse = True``) return non-negative CSR rows (n, dim) over ``vocabulary()``'s terms."""

    name: str
    dim: int
    sparse: bool = False

    @abstractmethod
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray | sp.csr_matrix: ...

    @abstractmethod
    def encode_text_documents(self, texts: Sequence[str]) -> np.ndarray | sp.csr_matrix: ...

    @abstractmethod
    def encode_image_documents(
        self, images: Sequence[Image.Image], captions: Sequence[str]
    ) -> np.ndarray | sp.csr_matrix:
        """An image document, with its caption where the method reads one (UniVL-DR, MARVEL, CIEA do)."""

    def encode_image_queries(self, images: Sequence[Image.Image]) -> np.ndarray | sp.csr_matrix:
        """An image as a query: the image document's encoding without a caption, unless a method says more."""
        return self.encode_image_documents(images, [""] * len(images))

    def vocabulary(self):
        """A sparse model's terms (``mmr.methods.lsr.head.Vocabulary`` over its tokenizer)."""
        raise NotImplementedError(f"{self.name} is dense: it has no terms")

    def tag(self) -> str:
        """Identifies the weights, so that an index built with other weights refuses to load."""
        return self.name
