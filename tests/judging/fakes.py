"""A fake search service for judging tests: a small corpus, and retrievers whose rankings are seeded
hashes that overlap (so pools have duplicates to remove)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from mmr.corpus.format import Corpus
from mmr.types import Document, Hit, Query

# Names a rater must never see: the blind tests look for them in what the service returns.
RETRIEVER_NAMES = ("secret-alpha", "secret-beta", "secret-gamma")


class FakeRetriever:
    def __init__(self, name: str, corpus: Corpus):
        self.name = name
        self.doc_ids = [doc.id for doc in corpus.documents]
        self.calls = 0

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        self.calls += 1
        key = query.key

        def order(doc_id: str) -> str:
            # Retrievers share their first half of preferences, so their top k overlap.
            salt = "shared" if int(hashlib.md5(doc_id.encode()).hexdigest(), 16) % 2 else self.name
            return hashlib.sha256(f"{salt}|{key}|{doc_id}".encode()).hexdigest()

        ranked = sorted(self.doc_ids, key=order)[:k]
        return [Hit(doc_id, 1.0 - rank / 100, rank) for rank, doc_id in enumerate(ranked, start=1)]


def make_corpus(tmp_path: Path, size: int = 30) -> Corpus:
    image_path = tmp_path / "doc.png"
    Image.new("RGB", (8, 8), "red").save(image_path)
    docs = [Document(f"doc-{i:02d}", "text", text=f"document number {i}") for i in range(size - 5)]
    docs += [Document(f"img-{i:02d}", "image", text=f"picture {i}", image_path=str(image_path)) for i in range(5)]
    return Corpus("fake", tuple(docs))
