"""Pooling: the union of several retrievers' top k, without duplicates, in an order that says nothing.

The order is a hash of (session seed, query, doc id): stable for a session and query (a reload, a
restart or a second rater sees the same order), different between queries and sessions, and
independent of which retriever found a document first or ranked it higher.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service loads models: analysis and exports need not import it
    from mmr.service import RetrieverResult


@dataclass(frozen=True)
class RankedDoc:
    """One line of one retriever's ranking, as shown when the pool was built."""

    retriever: str
    rank: int  # 1-based
    doc_id: str
    score: float


@dataclass(frozen=True)
class PoolItem:
    """What a rater sees of a pooled document: a position and the document, nothing about who found it."""

    position: int  # 1-based
    doc_id: str


def ranked_docs(results: Iterable[RetrieverResult], k: int) -> list[RankedDoc]:
    return [
        RankedDoc(result.retriever, hit.rank, hit.doc_id, hit.score) for result in results for hit in result.hits[:k]
    ]


def _shuffle_key(seed: str, query_key: str, doc_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{query_key}\x00{doc_id}".encode()).hexdigest()


def pool(rankings: Iterable[RankedDoc], seed: str, query_key: str) -> list[PoolItem]:
    """The distinct documents of ``rankings`` in the seeded order."""
    distinct = {ranked.doc_id for ranked in rankings}
    ordered = sorted(distinct, key=lambda doc_id: _shuffle_key(seed, query_key, doc_id))
    return [PoolItem(position, doc_id) for position, doc_id in enumerate(ordered, start=1)]
