"""The trained Dense2Sparse model as served: teacher (frozen) + sparse head + vocabulary.

On disk it is a folder: ``head.safetensors``, ``config.json``, the tokenizer files in
``vocabulary/`` (so the term names travel with the weights) and the manifest written last.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from mmr.encoders.base import ImageFeatures
from mmr.methods.lsr.head import SparseHead, TermSubsetHead, Vocabulary
from mmr.methods.lsr.student import NO_STUDENT, STUDENT_DIR, QueryStudent, StaticQueryStudent, load_student
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import DualEncoderModel

HEAD_FILE, CONFIG_FILE, VOCABULARY_DIR = "head.safetensors", "config.json", "vocabulary"
# An indexed document keeps at most its DOCUMENT_TERMS heaviest terms. A trained head puts fewer on a
# document (about a thousand, docs/findings.md), but a barely trained one spreads
# weight over a third of the vocabulary (8,456 terms per document after the tiny test store's few steps),
# and Seismic's build time and memory grow with every term: 83 s for 210 such documents. Dev scoring caps
# documents the same way (dev.py), so a checkpoint is chosen as it will be served.
DOCUMENT_TERMS = 2048
# Where a text query's vector comes from (LSRConfig.query_encoder): the head over the teacher's vector, as the
# paper does, or the query's own terms at learned weights, with no encoder run (SparseHead.queries).
TEACHER_QUERIES, LEXICAL_QUERIES = "teacher", "lexical"
QUERY_ENCODERS = (TEACHER_QUERIES, LEXICAL_QUERIES)


@dataclass(frozen=True)
class LSRConfig:
    teacher: str
    teacher_tag: str
    in_dim: int
    hidden: int
    vocab_size: int
    expand_texts: bool = True  # at serving time; chosen on dev at the end of training
    max_length: int = 256
    query_terms: int | None = None  # a search query keeps only its heaviest terms; chosen on dev (None: all)
    query_encoder: str = TEACHER_QUERIES  # one of QUERY_ENCODERS
    # Teacher queries only: which query student (student.py) encodes queries and an image query's verbalisation
    # instead of the teacher's text tower, and its layers for a "layers" student.
    query_student: str = NO_STUDENT
    query_student_layers: int = 0


class LSRModel:
    """Encodes texts and images into sparse (n, vocab) CSR rows of non-negative term weights."""

    def __init__(
        self,
        config: LSRConfig,
        head: SparseHead,
        vocabulary: Vocabulary,
        teacher: DualEncoderModel,
        student: QueryStudent | StaticQueryStudent | None = None,
    ):
        if (config.query_student != NO_STUDENT) != (student is not None):
            raise ValueError(f"config asks for query student {config.query_student!r}, given {student}")
        self.config = config
        self.head = head.eval()
        self.vocabulary = vocabulary
        self.teacher = teacher
        self.student = student
        self._term_weights = None if head.query_weights is None else head.term_weights().detach().numpy()

    @property
    def needs_grid(self) -> bool:
        return bool(getattr(self.teacher, "needs_grid", False))

    @torch.inference_mode()
    def sparsify(
        self,
        dense: np.ndarray,
        own_terms: Sequence[np.ndarray] | None = None,
        batch_size: int = 256,
        head: TermSubsetHead | None = None,
    ) -> sp.csr_matrix:
        """Head over teacher vectors; ``own_terms`` restricts each row to those terms, ``head`` (the head on
        the terms an index holds) to the terms a search can use."""
        dense = np.asarray(dense, np.float32)
        parts = []
        for start in range(0, len(dense), batch_size):
            own = None if own_terms is None else own_terms[start : start + batch_size]
            if head is not None:
                parts.append(head.sparse(dense[start : start + batch_size], own))
                continue
            allowed = None if own is None else self.vocabulary.mask(own)
            parts.append(sp.csr_matrix(self.head(torch.from_numpy(dense[start : start + batch_size]), allowed).numpy()))
        if not parts:
            return sp.csr_matrix((0, self.config.vocab_size), dtype=np.float32)
        return sp.vstack(parts, format="csr", dtype=np.float32)

    def encode_texts(self, texts: Sequence[str], expand: bool | None = None) -> sp.csr_matrix:
        expand = self.config.expand_texts if expand is None else expand
        own = None if expand else self.vocabulary.own_terms(texts)
        return self.sparsify(self.teacher.encode_texts(list(texts)), own)

    def encode_queries(self, texts: Sequence[str], head: TermSubsetHead | None = None) -> sp.csr_matrix:
        """Text queries as searched: through the teacher (or its query student) and the head (``head``: only on
        the terms an index holds), kept to their own terms where texts do not expand; or (lexical) their own
        terms alone."""
        if self._term_weights is None:
            encode = self.teacher.encode_texts if self.student is None else self.student.encode
            own = None if self.config.expand_texts else self.vocabulary.own_terms(texts)
            return self.sparsify(encode(list(texts)), own, head=head)
        rows = []
        for terms in self.vocabulary.own_terms(list(texts)):
            weights = self._term_weights[terms]
            kept = weights > 0  # a term whose weight training drove to zero leaves the query
            rows.append(
                sp.csr_matrix((weights[kept], terms[kept], [0, int(kept.sum())]), shape=(1, self.config.vocab_size))
            )
        if not rows:
            return sp.csr_matrix((0, self.config.vocab_size), dtype=np.float32)
        return sp.vstack(rows, format="csr", dtype=np.float32)

    def encode_images(self, features: ImageFeatures) -> sp.csr_matrix:
        return self.sparsify(self.teacher.encode_images(features))  # images always expand

    def encode_image_queries(self, features: ImageFeatures, head: TermSubsetHead | None = None) -> sp.csr_matrix:
        """Image queries as searched: the query student, where there is one, encodes the verbalisation."""
        if self.student is None or not hasattr(self.teacher, "verbalisations"):
            return self.sparsify(self.teacher.encode_images(features), head=head)
        return self.sparsify(self.teacher.encode_images(features, encode_words=self.student.encode), head=head)

    def head_on(self, terms: np.ndarray) -> TermSubsetHead | None:
        """The head on ``terms`` alone, for queries; None where queries do not go through the head (lexical)."""
        return TermSubsetHead(self.head, terms) if self._term_weights is None else None

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / HEAD_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        self.vocabulary.tokenizer.save_pretrained(str(folder / VOCABULARY_DIR))
        if self.student is not None:
            self.student.save(folder / STUDENT_DIR)

    @classmethod
    def load(cls, folder: Path, resources: Resources, teacher: DualEncoderModel | None = None) -> LSRModel:
        from safetensors.torch import load_file

        from mmr.methods.lsr.teacher import load_teacher

        config = LSRConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        vocabulary = Vocabulary.from_path(folder / VOCABULARY_DIR)
        state = load_file(str(folder / HEAD_FILE))
        lexical = config.query_encoder == LEXICAL_QUERIES
        head = SparseHead(config.in_dim, state["decoder.weight"], vocabulary.usable, lexical_queries=lexical)
        head.load_state_dict(state)
        student = load_student(folder / STUDENT_DIR) if config.query_student != NO_STUDENT else None
        return cls(config, head, vocabulary, teacher or load_teacher(config.teacher, resources), student)


def prune_row(row: sp.csr_matrix, keep: int | None) -> sp.csr_matrix:
    """A one-row sparse vector with only its ``keep`` heaviest terms (all of them for None)."""
    row = sp.csr_matrix(row)
    if keep is None or row.nnz <= keep:
        return row
    order = np.argsort(-row.data, kind="stable")[:keep]
    pruned = sp.csr_matrix((row.data[order], (np.zeros(keep, np.int64), row.indices[order])), shape=row.shape)
    pruned.sort_indices()
    return pruned


def prune_rows(rows: sp.csr_matrix, keep: int | None) -> sp.csr_matrix:
    """Every row of a sparse matrix pruned as ``prune_row`` prunes one (the same terms kept, ties included)."""
    rows = sp.csr_matrix(rows)
    if keep is None:
        return rows
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    # by row, then heaviest first, then stored position: prune_row's stable sort within each row
    order = np.lexsort((np.arange(rows.nnz), -rows.data, row_of))
    rank = np.arange(rows.nnz) - rows.indptr[row_of[order]]
    kept = order[rank < keep]
    pruned = sp.csr_matrix((rows.data[kept], (row_of[kept], rows.indices[kept])), shape=rows.shape)
    pruned.sort_indices()
    return pruned


def keep_heaviest(weights: torch.Tensor, keep: int) -> torch.Tensor:
    """(n, vocab) weights with only each row's ``keep`` heaviest left (``prune_rows`` on dense rows)."""
    if weights.shape[1] <= keep:
        return weights
    values, columns = weights.topk(keep, dim=1)
    return torch.zeros_like(weights).scatter_(1, columns, values)
