"""Fixtures: a JudgingService over the fake search service (fakes.py) and a temporary database."""

from __future__ import annotations

import pytest

from mmr.judging import JudgingService
from mmr.service import SearchService
from mmr.store import RatingStore
from tests.judging.fakes import RETRIEVER_NAMES, FakeRetriever, make_corpus


@pytest.fixture
def search_service(tmp_path) -> SearchService:
    corpus = make_corpus(tmp_path)
    service = SearchService(resources=None, collections={"fake": corpus})
    for name in RETRIEVER_NAMES:
        service.retrievers[(name, "fake")] = FakeRetriever(name, corpus)
    return service


@pytest.fixture
def store(tmp_path) -> RatingStore:
    store = RatingStore(tmp_path / "ratings.sqlite")
    yield store
    store.close()


@pytest.fixture
def judging(search_service, store, tmp_path) -> JudgingService:
    return JudgingService(search_service, store.judgments, tmp_path / "uploads")


@pytest.fixture
def session(judging):
    """A session of three text queries over the three fake retrievers, top 5: ann owns it, bob joined it."""
    judging.create_session("s1", "fake", list(RETRIEVER_NAMES), 5, "ann")
    judging.add_text_queries("s1", [(None, "red flower"), ("t7", "old car"), (None, "a cat")], "ann")
    judging.join(judging.join_code("s1", "ann"), "bob")
    return "s1"
