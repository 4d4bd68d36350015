"""The teacher's side of distillation, computed once before the head trains: its vectors of every distinct
training query and document, each text's own terms, and which rows each training pair joins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmr.methods.lsr.head import Vocabulary
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import DualEncoderModel
from mmr.training.data import TrainingData


@dataclass
class TeacherTables:
    """Teacher vectors and own-token lists, one row per distinct query / per document."""

    queries: torch.Tensor
    query_terms: list[np.ndarray]
    documents: torch.Tensor
    document_terms: list[np.ndarray | None]  # None for images: they always expand
    query_row: np.ndarray  # per example
    document_row: np.ndarray  # per example
    images: int = 0  # documents[:images] are the images
    query_texts: list[str] | None = None  # the text of each row of ``queries``
    query_inputs: torch.Tensor | None = None  # what the head reads for each query row, where not ``queries``
    hard_rows: np.ndarray | None = None  # per example: candidate hard-negative document rows, -1 where none

    def mine_image_neighbours(self, k: int, chunk: int = 2048) -> None:
        """``hard_rows``: for each example whose positive is an image, the ``k`` training images nearest its
        query by the teacher's score, the positive left out."""
        self.hard_rows = np.full((len(self.query_row), k), -1, dtype=np.int64)
        examples = np.flatnonzero(self.document_row < self.images)
        images = self.documents[: self.images]
        for start in range(0, len(examples), chunk):
            rows = examples[start : start + chunk]
            scores = self.queries[self.query_row[rows]] @ images.T
            scores[torch.arange(len(rows)), torch.from_numpy(self.document_row[rows])] = float("-inf")
            self.hard_rows[rows] = scores.topk(min(k, self.images - 1), dim=1).indices.numpy()

    def hard_negatives_for(self, examples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One drawn hard-negative document row for each of ``examples`` that has candidates."""
        pools = self.hard_rows[examples]
        pools = pools[pools[:, 0] >= 0]
        return pools[np.arange(len(pools)), rng.integers(0, pools.shape[1], size=len(pools))]


def teacher_tables(
    data: TrainingData, teacher: DualEncoderModel, vocabulary: Vocabulary, resources: Resources
) -> TeacherTables:
    texts = sorted({example.query for example in data.examples})
    text_of = {text: row for row, text in enumerate(texts)}
    features = data.image_features(resources, keep_grid=bool(getattr(teacher, "needs_grid", False)))
    glosses = [data.documents[doc_id].text for doc_id in data.text_ids]
    documents = np.concatenate([teacher.encode_images(features), teacher.encode_texts(glosses)])
    doc_of = {doc_id: row for row, doc_id in enumerate([*data.image_ids, *data.text_ids])}
    return TeacherTables(
        queries=torch.from_numpy(np.asarray(teacher.encode_texts(texts), np.float32)),
        query_terms=vocabulary.own_terms(texts),
        documents=torch.from_numpy(np.asarray(documents, np.float32)),
        document_terms=[None] * len(data.image_ids) + vocabulary.own_terms(glosses),
        query_row=np.asarray([text_of[e.query] for e in data.examples]),
        document_row=np.asarray([doc_of[e.positive_id] for e in data.examples]),
        images=len(data.image_ids),
        query_texts=texts,
    )
