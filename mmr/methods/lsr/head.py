"""The Dense2Sparse head and the two schedules that shape its training.

A frozen dense vector (text or image, from the teacher) becomes a weight per WordPiece term:
``log1p(relu(decoder(LayerNorm(Linear(v)))))``. The decoder is initialised from the text backbone's
word-embedding matrix, the idea of a tied MLM decoder: at the start, a term scores by how close its
input embedding lies to the projected vector. One head serves images and texts alike.

Expansion control (the paper's contribution): with probability ``p`` per batch, texts may only put
weight on their own tokens, which anchors each term to its lexical meaning; images are always free
to expand. ``p`` falls from 1 to 0 over the first 95% of training.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class Vocabulary:
    """The WordPiece vocabulary the sparse vectors live in: term names and each text's own terms."""

    def __init__(self, tokenizer, max_length: int = 256):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.size = len(tokenizer)
        # Special and [unusedN] slots have no meaning a reader could check: never give them weight.
        names = tokenizer.convert_ids_to_tokens(list(range(self.size)))
        banned = set(tokenizer.all_special_ids) | {i for i, name in enumerate(names) if name.startswith("[unused")}
        self.usable = torch.ones(self.size, dtype=torch.bool)
        self.usable[sorted(banned)] = False
        self._special = np.asarray(sorted(banned), dtype=np.int64)

    @classmethod
    def from_path(cls, path: str | Path) -> Vocabulary:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)))

    def own_terms(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Sorted distinct term ids of each text, special tokens left out."""
        if not texts:
            return []  # the tokenizer fails on an empty batch (a collection without text documents)
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return [np.setdiff1d(np.asarray(ids, dtype=np.int64), self._special) for ids in encoded]

    def mask(self, term_lists: Sequence[np.ndarray]) -> torch.Tensor:
        """(n, size) bool: True where row i may carry weight."""
        allowed = torch.zeros(len(term_lists), self.size, dtype=torch.bool)
        for row, terms in enumerate(term_lists):
            allowed[row, torch.as_tensor(terms, dtype=torch.long)] = True
        return allowed

    def terms(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens([int(i) for i in ids])


def document_mask(terms: Sequence[np.ndarray | None], vocabulary: Vocabulary) -> torch.Tensor:
    """Own-token mask for texts; images (``None``) stay unrestricted (all usable terms)."""
    mask = vocabulary.mask([t if t is not None else np.zeros(0, np.int64) for t in terms])
    for row, t in enumerate(terms):
        if t is None:
            mask[row] = True
    return mask


class SparseHead(nn.Module):
    """Dense vector -> non-negative weight per vocabulary term (most of them exactly zero)."""

    def __init__(
        self,
        in_dim: int,
        word_embeddings: torch.Tensor,
        usable: torch.Tensor | None = None,
        lexical_queries: bool = False,
    ):
        super().__init__()
        vocab_size, hidden = word_embeddings.shape
        self.project = nn.Linear(in_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.decoder = nn.Linear(hidden, vocab_size)
        with torch.no_grad():
            self.decoder.weight.copy_(word_embeddings)
            self.decoder.bias.zero_()
        usable = torch.ones(vocab_size, dtype=torch.bool) if usable is None else usable
        self.register_buffer("usable", usable.clone(), persistent=False)
        # The inference-free query side (``lexical_queries``): a query is its own terms, each with a learned
        # weight, so searching runs no encoder at all; documents still go through the head. A query pays
        # for the teacher's encoder otherwise, and can never be cheaper than the teacher it imitates.
        # Starting at 1 (weight log1p(1)) every term can still move; one driven below 0 leaves queries.
        self.query_weights = nn.Parameter(torch.ones(vocab_size)) if lexical_queries else None

    def forward(self, dense: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """``allowed`` (n, vocab) bool restricts row i to those terms (no expansion); None expands."""
        logits = self.decoder(self.norm(self.project(dense)))
        weights = torch.log1p(torch.relu(logits)) * self.usable
        if allowed is not None:
            weights = weights * allowed
        return weights

    def queries(self, dense: torch.Tensor, own: torch.Tensor, expand: bool) -> torch.Tensor:
        """Query rows: each query's own terms (``own``, (n, vocab) bool) at their learned weights on the
        lexical side; else the head over the teacher's vectors, kept to the own terms unless ``expand``."""
        if self.query_weights is not None:
            return self.term_weights() * own
        return self(dense, None if expand else own)

    def term_weights(self) -> torch.Tensor:
        """The lexical query side's weight of every term (zero for unusable ones)."""
        return torch.log1p(torch.relu(self.query_weights)) * self.usable


# BLAS threads for the query head's numpy product (scripts/lsr_query_cost.py times 1 against 2).
QUERY_BLAS_THREADS = 1


@functools.cache
def _blas_threads():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


class TermSubsetHead:
    """The head's output on a fixed subset of the vocabulary (the terms an index holds), for one query at a time.

    Each of those terms gets the weight the whole head gives it (up to float rounding), and a query term no
    document holds could not change any score. It runs in numpy, whose float32 product of one row with the
    decoder was several times faster than torch's on the 2-core machine (scripts/lsr_query_cost.py times both);
    the sparse row is built from the positive weights directly, without the 30,522-wide row."""

    def __init__(self, head: SparseHead, terms: np.ndarray):
        terms = np.asarray(terms, dtype=np.int64)
        self.terms = terms[head.usable.numpy()[terms]] if len(terms) else terms  # ascending, as given
        self.vocab_size = head.decoder.out_features
        rows = torch.from_numpy(self.terms)
        self.project_weight, self.project_bias = _array(head.project.weight.T), _array(head.project.bias)
        self.norm_weight, self.norm_bias, self.eps = _array(head.norm.weight), _array(head.norm.bias), head.norm.eps
        self.weight, self.bias = _array(head.decoder.weight[rows].T), _array(head.decoder.bias[rows])

    def sparse(self, dense: np.ndarray, own_terms: Sequence[np.ndarray] | None = None) -> sp.csr_matrix:
        """(n, vocab) CSR rows of term weights; ``own_terms`` keeps row i to those terms (no expansion)."""
        # One BLAS thread: OpenBLAS's idle threads spin after a product and starve the torch encoder that runs
        # next; one thread costs the product nothing (scripts/lsr_query_cost.py times a search with 1 and 2).
        with _blas_threads().limit(limits=QUERY_BLAS_THREADS, user_api="blas"):
            hidden = np.asarray(dense, np.float32) @ self.project_weight + self.project_bias
            centred = hidden - hidden.mean(axis=1, keepdims=True)
            hidden = centred / np.sqrt((centred**2).mean(axis=1, keepdims=True) + self.eps)
            logits = (hidden * self.norm_weight + self.norm_bias) @ self.weight + self.bias
        weights = np.log1p(np.maximum(logits, 0.0))
        if own_terms is not None:
            for row, terms in enumerate(own_terms):
                weights[row, ~np.isin(self.terms, terms)] = 0.0
        rows, columns = np.nonzero(weights)
        return sp.csr_matrix(
            (weights[rows, columns], (rows, self.terms[columns])), shape=(len(weights), self.vocab_size)
        )


def expansion_off_probability(step: int, total_steps: int, anneal_fraction: float = 0.95, floor: float = 0.0) -> float:
    """P(texts restricted to their own tokens) at ``step``: linear from 1 to 0 over ``anneal_fraction``
    (the paper's schedule), never below ``floor``."""
    end = max(1.0, anneal_fraction * total_steps)
    return max(floor, 1.0 - step / end)


def regulariser_weight(step: int, warmup_steps: int, final_weight: float) -> float:
    """Quadratic warm-up of the sparsity weight: sparsify only once the ranking has started to form."""
    if warmup_steps <= 0:
        return final_weight
    return final_weight * min(1.0, step / warmup_steps) ** 2


def l1_penalty(weights: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of each vector's total weight (weights are non-negative, so this is L1)."""
    return weights.float().sum(dim=1).mean()


def flops_penalty(weights: torch.Tensor) -> torch.Tensor:
    """SPLADE's FLOPS regulariser: the sum over terms of the squared mean weight in the batch.

    A term's mean weight over a batch stands for how many documents carry it, i.e. its posting
    list's length, and a query pays for every list it touches. Squaring makes one long list cost
    more than the same total weight spread over many short ones, which L1 cannot tell apart: L1
    makes vectors short, FLOPS makes the inverted index cheap to traverse.
    """
    return weights.float().mean(dim=0).pow(2).sum()


SPARSITY_PENALTIES = {"l1": l1_penalty, "flops": flops_penalty}


def distillation_loss(
    query_sparse: torch.Tensor,
    doc_sparse: torch.Tensor,
    query_dense: torch.Tensor,
    doc_dense: torch.Tensor,
    teacher_temperature: float,
) -> torch.Tensor:
    """Cross-entropy of the sparse in-batch scores against the dense teacher's in-batch softmax,
    both ways (queries over documents and documents over queries). Documents may outnumber the
    queries: hard negatives join the batch as documents with no query of their own."""
    student = query_sparse @ doc_sparse.T
    with torch.autocast(query_dense.device.type, enabled=False):  # at 1/0.01, bfloat16's rounding would move ranks
        teacher = (query_dense.float() @ doc_dense.float().T) / teacher_temperature
    forward = torch.nn.functional.cross_entropy(student, teacher.softmax(dim=1))
    backward = torch.nn.functional.cross_entropy(student.T, teacher.T.softmax(dim=1))
    return (forward + backward) / 2
