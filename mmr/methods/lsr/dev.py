"""Dev scoring of the sparse head while it trains: MRR@10 in each dev setting, and what a query costs.

The retriever serves both collections, so checkpoints are chosen on both dev settings (as UniVL-DR's
are): the stamps (images only) and the mixed collection (stamps + WordNet glosses). Scores go through
scipy CSR products: the vectors are mostly zeros, and a dense product over 30,522 terms for the mixed
collection's ~6k documents would cost seconds per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.splits import load_benchmark
from mmr.encoders.registry import STAND_INS
from mmr.methods.lsr.head import SparseHead, Vocabulary, document_mask
from mmr.methods.lsr.model import DOCUMENT_TERMS, keep_heaviest, prune_rows
from mmr.methods.lsr.report import heaviest_term_is_own, longest_lists_share
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import DualEncoderModel
from mmr.training.data import mrr_at_10, mrr_at_10_of_scores

DEV_SETS = (("stamps", "images"), ("mixed", "mixed"))  # (collection, benchmark setting)
# Serving-time text modes a checkpoint can be scored in: texts expand (the paper), or keep to their own tokens.
TEXT_MODES = {"expanded": True, "own_tokens": False}


def choose_query_cut(scores: dict[int, float], tolerance: float) -> int | None:
    """The fewest query terms whose dev MRR@10 is within ``tolerance`` of the unpruned query's; None: keep all.

    ``scores`` maps a cut to its dev MRR@10; the largest cut must be the whole vocabulary (no pruning).
    """
    full_cut = max(scores)
    for cut in sorted(scores):
        if scores[cut] >= scores[full_cut] - tolerance:
            return None if cut == full_cut else cut
    return None


def postings_per_query(queries: torch.Tensor | sp.csr_matrix, documents: torch.Tensor | sp.csr_matrix) -> float:
    """Mean over queries of the postings in the lists of the query's terms: the work of an exhaustive
    term-at-a-time traversal (what ``SparseIndex.postings_in_query_lists`` counts on a built index)."""
    held = _csr(queries) > 0
    if not held.shape[0]:
        return float("nan")
    document_frequency = np.bincount((_csr(documents) > 0).indices, minlength=held.shape[1])
    return float((held.astype(np.float64) @ document_frequency).mean())


def _mean_nonzeros(rows: sp.csr_matrix) -> float:
    return float(np.diff(rows.indptr).mean()) if rows.shape[0] else float("nan")


class DevProbe:
    """One dev setting: the teacher's vectors of its queries and documents, scored through the head."""

    def __init__(
        self,
        settings: Settings,
        resources: Resources,
        teacher: DualEncoderModel,
        vocabulary: Vocabulary,
        collection: str,
        setting: str,
    ):
        corpus = load_collection(settings, collection)
        benchmark = load_benchmark(settings.benchmark_dir, setting, "dev")
        images, texts = corpus.of_modality("image"), [d.text for d in corpus.of_modality("text")]
        grid = bool(getattr(teacher, "needs_grid", False))
        parts = [teacher.encode_images(resources.image_features(images, STAND_INS.image, keep_grid=grid))]
        if texts:
            parts.append(teacher.encode_texts(texts))
        self.name = collection  # prefixes its keys in the history: dev_stamps_expanded, ...
        self.vocabulary = vocabulary
        self.doc_ids = [d.id for d in images] + [d.id for d in corpus.of_modality("text")]
        self.documents = torch.from_numpy(np.concatenate([np.asarray(p, np.float32) for p in parts]))
        self.document_terms = [None] * len(images) + vocabulary.own_terms(texts)
        self.qids = list(benchmark.queries)
        self.query_texts = [benchmark.queries[q] for q in self.qids]
        self.qrels = benchmark.qrels
        self.queries = torch.from_numpy(np.asarray(teacher.encode_texts(self.query_texts), np.float32))
        # What the head reads for each query: the teacher's vectors, or a query student's once one is taught.
        self.query_inputs = self.queries
        self.query_terms = vocabulary.own_terms(self.query_texts)
        self.teacher_mrr = mrr_at_10(self.documents.numpy(), self.doc_ids, self.queries.numpy(), self.qids, self.qrels)

    @torch.inference_mode()
    def encode_sparse(
        self, head: SparseHead, expand: bool, dense_queries: torch.Tensor | None = None, chunk: int = 512
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(queries, documents) as the retriever would search and index them in this text mode, as CSR rows; the
        queries' dense vectors are ``query_inputs`` unless given. Documents go through the head ``chunk`` at a
        time: the mixed collection's 5,949 rows over 30,522 terms would be a 726 MB dense matrix at once."""
        was_training = head.training
        head.eval()
        dense = self.query_inputs if dense_queries is None else dense_queries
        queries = _csr(head.queries(dense, self.vocabulary.mask(self.query_terms), expand))
        parts = []
        for start in range(0, len(self.documents), chunk):
            rows = self.documents[start : start + chunk]
            allowed = None if expand else document_mask(self.document_terms[start : start + chunk], self.vocabulary)
            parts.append(_csr(keep_heaviest(head(rows, allowed), DOCUMENT_TERMS)))  # as the retriever indexes them
        head.train(was_training)
        empty = sp.csr_matrix((0, self.vocabulary.size), dtype=np.float32)
        return queries, sp.vstack(parts, format="csr") if parts else empty

    def encode(
        self, head: SparseHead, expand: bool, dense_queries: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``encode_sparse`` as dense tensors (for the tests and probe scripts that index them)."""
        queries, documents = self.encode_sparse(head, expand, dense_queries)
        return torch.from_numpy(queries.toarray()), torch.from_numpy(documents.toarray())

    def mrr(self, queries: torch.Tensor | sp.csr_matrix, documents: torch.Tensor | sp.csr_matrix) -> float:
        scores = (_csr(queries) @ _csr(documents).T).toarray()
        return mrr_at_10_of_scores(scores, self.doc_ids, self.qids, self.qrels)

    def score(self, head: SparseHead, modes: Sequence[str] = TEXT_MODES) -> dict:
        """Dev MRR@10 and what a query costs, in each of ``modes`` (keys of TEXT_MODES)."""
        results = {}
        for mode in modes:
            queries, documents = self.encode_sparse(head, TEXT_MODES[mode])
            lists = np.bincount(documents.indices, minlength=documents.shape[1])  # each term's posting list
            results[f"dev_{self.name}_{mode}"] = round(self.mrr(queries, documents), 4)
            results[f"{self.name}_{mode}_query_nonzeros"] = round(_mean_nonzeros(queries), 1)
            results[f"{self.name}_{mode}_document_nonzeros"] = round(_mean_nonzeros(documents), 1)
            results[f"{self.name}_{mode}_postings_per_query"] = round(postings_per_query(queries, documents), 1)
            # the paper's two problems, as `mmr evaluate`'s sparse report measures them (report.py)
            results[f"{self.name}_{mode}_longest_1pct_lists_share"] = round(longest_lists_share(lists, 0.01), 3)
            rows = [queries[row] for row in range(queries.shape[0])]
            results[f"{self.name}_{mode}_heaviest_term_own"] = round(heaviest_term_is_own(rows, self.query_terms), 3)
        results[f"{self.name}_dense_multiply_adds"] = int(self.documents.numel())
        return results

    def query_cut_scores(
        self, head: SparseHead, expand: bool, cuts: Sequence[int], dense_queries: torch.Tensor | None = None
    ) -> dict[int, float]:
        """Dev MRR@10 with each query pruned to its ``cut`` heaviest terms (documents untouched), by the
        same pruning (``prune_row``) the retriever applies at search time."""
        rows, documents = self.encode_sparse(head, expand, dense_queries)
        return {cut: self.mrr(prune_rows(rows, cut), documents) for cut in cuts}


def _csr(vectors: torch.Tensor | sp.csr_matrix) -> sp.csr_matrix:
    return vectors if sp.issparse(vectors) else sp.csr_matrix(vectors.numpy())


def dev_probes(
    settings: Settings, resources: Resources, teacher: DualEncoderModel, vocabulary: Vocabulary
) -> list[DevProbe]:
    return [DevProbe(settings, resources, teacher, vocabulary, collection, setting) for collection, setting in DEV_SETS]


def mean_over(probes: Sequence[DevProbe], scores: dict, mode: str) -> float:
    """The selection score: the mean dev MRR@10 of ``mode`` over every dev setting."""
    return float(np.mean([scores[f"dev_{probe.name}_{mode}"] for probe in probes]))


def relative_cost(probes: Sequence[DevProbe], scores: dict, mode: str) -> float:
    """The tie-break: postings a dev query meets, as a share of the dense teacher's multiply-adds, mean over
    every dev setting (so the larger collection does not outweigh the other)."""
    return float(
        np.mean(
            [
                scores[f"{probe.name}_{mode}_postings_per_query"] / scores[f"{probe.name}_dense_multiply_adds"]
                for probe in probes
            ]
        )
    )
