"""The CLIP zero-shot baseline end to end on a tiny CLIP the test creates (no CLIP weights install here)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmr.build import build_indexes
from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.encoders.clip import CLIP_PATH_VARIABLE
from mmr.index import IndexMismatchError
from mmr.retrievers import Resources
from mmr.retrievers.clip_zeroshot import CLIPZeroShotRetriever
from mmr.service import SearchService
from mmr.types import Document, Query
from tests.tiny_clip import save_tiny_clip

WORDS = ["a", "red", "flower", "cat", "dog", "blue", "car"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return [save_tiny_clip(tmp_path_factory.mktemp(f"tiny-clip-{seed}"), WORDS, seed=seed) for seed in (0, 1)]


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    rng = np.random.default_rng(0)
    docs = []
    for name in ("noise-a", "noise-b", "noise-c"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(path)
        docs.append(Document(f"img/{name}", "image", "", str(path)))
    docs += [Document("txt/flower", "text", "a red flower"), Document("txt/car", "text", "a blue car")]
    return Corpus("tiny", tuple(docs))


@pytest.fixture
def resources(tmp_path, checkpoints, monkeypatch) -> Resources:
    monkeypatch.setenv(CLIP_PATH_VARIABLE, str(checkpoints[0]))
    return Resources(Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data"), device="cpu")


def test_both_towers_meet_in_one_space_text_and_image_queries_find_their_own_document(corpus, resources, tmp_path):
    from mmr.corpus.images import load_image

    retriever = CLIPZeroShotRetriever.build(corpus, resources, tmp_path / "idx")
    assert retriever.search(Query(text="a blue car"), k=5)[0].doc_id == "txt/car"
    image = load_image(corpus.documents[1].image_path)
    hits = retriever.search(Query(image=image, image_sha="x"), k=5)
    assert hits[0].doc_id == "img/noise-b" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert {hit.doc_id for hit in hits} == {doc.id for doc in corpus.documents}  # texts and images ranked together
    reloaded = CLIPZeroShotRetriever.load(corpus, resources, tmp_path / "idx")
    assert [h.doc_id for h in reloaded.search(Query(text="a red flower"), k=5)] == [
        h.doc_id for h in retriever.search(Query(text="a red flower"), k=5)
    ]


def test_an_index_refuses_another_checkpoint(corpus, resources, checkpoints, tmp_path, monkeypatch):
    CLIPZeroShotRetriever.build(corpus, resources, tmp_path / "idx")
    monkeypatch.setenv(CLIP_PATH_VARIABLE, str(checkpoints[1]))  # same shapes, other weights
    other = Resources(resources.settings, device="cpu")
    with pytest.raises(IndexMismatchError):
        CLIPZeroShotRetriever.load(corpus, other, tmp_path / "idx")


def test_without_a_checkpoint_build_skips_it_and_the_app_says_why(corpus, tmp_path, monkeypatch):
    from mmr.collections import add_collection
    from mmr.corpus.format import write_documents

    monkeypatch.delenv(CLIP_PATH_VARIABLE, raising=False)
    settings = Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")
    write_documents(corpus.documents, tmp_path / "mine.jsonl")
    add_collection(settings, "mine", tmp_path / "mine.jsonl")
    resources = Resources(settings, device="cpu")
    summary = build_indexes(settings, resources, retriever_names=["clip-zeroshot"], collection_names=["mine"])
    assert len(summary.skipped) == 1 and summary.skipped[0].startswith("clip-zeroshot/mine: not configured: set ")
    assert CLIP_PATH_VARIABLE in summary.skipped[0]
    # not an error the app must alarm about: listed as not configured, with what it needs
    service = SearchService.load(settings, ["clip-zeroshot"], ["mine"], resources)
    assert service.available("mine") == [] and service.load_errors == {}
    assert CLIP_PATH_VARIABLE in service.not_configured["clip-zeroshot"]
