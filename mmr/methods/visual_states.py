"""Frozen inputs of the visual-token trainers: the training table, the dev set, and cached layer states.

``lower_states`` gives the hidden states after the bottom ``k`` layers of a set of sequences (the
training stack's ``FrozenStates``). Once the visual module and those layers are frozen they never
change, so the language-model stages compute them once and train only the layers above: the single
largest saving on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmr.encoders.base import ImageFeatures
from mmr.encoders.registry import STAND_INS
from mmr.methods.visual_tokens import VisualTokenEncoder
from mmr.training.data import TrainingData
from mmr.training.stack import FrozenStates, frozen


@dataclass
class TrainingTable:
    """Examples as rows into one document table: the training images first, then the text documents."""

    queries: list[str]
    groups: list[str]
    positives: np.ndarray  # (n_examples,) row of each example's positive document
    grid: np.ndarray  # (n_images, patches, channels) float16, rows 0 .. n_images-1 of the table
    logits: np.ndarray  # (n_images, 1000)
    texts: list[str]  # text documents, rows n_images .. end
    doc_ids: list[str]
    fingerprint: str = ""  # of the training examples, for the manifest
    pooled: np.ndarray | None = None  # (n_images, channels): what borrowed captions are found by
    image_captions: list[str] | None = None  # each training image's own caption: what others borrow

    @classmethod
    def from_data(cls, data: TrainingData, features: ImageFeatures) -> TrainingTable:
        doc_ids = list(data.image_ids) + list(data.text_ids)
        row = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        return cls(
            queries=[e.query for e in data.examples],
            groups=[e.group for e in data.examples],
            positives=np.array([row[e.positive_id] for e in data.examples]),
            grid=features.grid,
            logits=features.logits,
            texts=[data.documents[i].text for i in data.text_ids],
            doc_ids=doc_ids,
            fingerprint=data.fingerprint,
            pooled=features.pooled,
            image_captions=[data.documents[i].text for i in data.image_ids],
        )

    @property
    def n_images(self) -> int:
        return len(self.grid)

    @property
    def doc_is_image(self) -> np.ndarray:
        return np.arange(len(self.doc_ids)) < self.n_images

    def image_examples(self) -> np.ndarray:
        return np.flatnonzero(self.positives < self.n_images)

    def group_positives(self) -> list[set[int]]:
        """For each example, every document that is a positive of its query group (never a negative)."""
        by_group: dict[str, set[int]] = {}
        for group, row in zip(self.groups, self.positives):
            by_group.setdefault(group, set()).add(int(row))
        return [by_group[g] for g in self.groups]


@dataclass
class DevTable:
    """The images-setting dev queries against the stamps collection, as arrays."""

    grid: np.ndarray
    logits: np.ndarray
    doc_ids: list[str]
    qids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, int]]
    pooled: np.ndarray | None = None


def lower_states(
    model: VisualTokenEncoder,
    inputs: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
    n: int,
    layers: int,
    batch_size: int = 64,
    progress: str | None = None,
    lengths: Sequence[int] | None = None,
) -> FrozenStates:
    """States after ``layers`` layers of ``n`` sequences; ``inputs(rows)`` gives those rows' (embeds, mask).
    The model must be frozen below ``layers``."""

    def states_of(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, mask = inputs(rows)
        return model.lower(embeds, mask, layers), mask

    with frozen(model):
        return FrozenStates.compute(states_of, n, layers, batch_size, lengths, progress)


def grid_rows(grid: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(grid[rows], dtype=np.float32))


def load_tables(settings, resources, data_options=None) -> tuple[TrainingTable, DevTable]:
    """The training table (frozen grids of the training images, the training data changed by
    ``data_options``, a training/variants.py ``DataOptions``) and the dev table, from the caches."""
    from mmr.training.data import load_dev_set, load_training_data

    data = load_training_data(settings, resources)
    if data_options is not None:
        data = data_options.apply(data, resources)
    table = TrainingTable.from_data(data, data.image_features(resources, keep_grid=True))
    dev = load_dev_set(settings)
    features = resources.image_features(dev.image_documents, STAND_INS.image, keep_grid=True)
    queries = dev.benchmark.queries
    dev_table = DevTable(
        features.grid,
        features.logits,
        [d.id for d in dev.image_documents],
        list(queries),
        [queries[q] for q in queries],
        dev.benchmark.qrels,
        features.pooled,
    )
    return table, dev_table
