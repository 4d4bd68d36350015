"""SearchService: one retriever's failure stays in its column; a refresh swaps a whole set in at once."""

from __future__ import annotations

import threading

from mmr.corpus.format import Corpus
from mmr.service import SearchService
from mmr.types import Document, Hit, Query


class Fixed:
    def __init__(self, doc_id: str):
        self.doc_id = doc_id

    def search(self, query, k=10):
        return [Hit(self.doc_id, 1.0, 1)]

    def explain(self, query, doc_id):
        return None


class Broken(Fixed):
    def search(self, query, k=10):
        raise RuntimeError("index file vanished")


def _service() -> SearchService:
    corpus = Corpus("c", [Document("a", "text", "alpha"), Document("b", "text", "beta")])
    return SearchService(resources=None, collections={"c": corpus})


def test_a_retriever_that_raises_fails_its_own_column_only():
    service = _service()
    service.retrievers = {("good", "c"): Fixed("a"), ("bad", "c"): Broken("b")}
    good, bad, missing = service.search(Query(text="alpha"), ["good", "bad", "gone"], "c")
    assert good.hits and good.error is None
    assert not bad.hits and bad.error == "bad failed on this query: RuntimeError"
    assert not missing.hits and "not available" in missing.error


def test_a_search_sees_one_set_of_retrievers_while_another_is_swapped_in():
    service = _service()
    old = {("m", "c"): Fixed("a"), ("n", "c"): Fixed("a")}
    new = {("m", "c"): Fixed("b"), ("n", "c"): Fixed("b")}
    service.retrievers = old
    stop, mixed = threading.Event(), []

    def swap():
        while not stop.is_set():
            service.retrievers = new if service.retrievers is old else old

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for _ in range(2000):
            results = service.search(Query(text="q"), ["m", "n"], "c")
            if len({r.hits[0].doc_id for r in results}) != 1:
                mixed.append(results)
    finally:
        stop.set()
        swapper.join()
    assert not mixed, f"{len(mixed)} searches mixed two sets of retrievers"
