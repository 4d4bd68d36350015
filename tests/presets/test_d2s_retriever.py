"""The Dense2Sparse preset as a retriever: a Seismic index over a tiny corpus, built, loaded back and searched
with a text and an image query; the ranking is the dot product of the model's own vectors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.methods.lsr.index import SparseIndex
from mmr.presets.registry import PRESETS
from mmr.retrievers.base import Resources
from mmr.retrievers.preset import preset_retriever
from mmr.types import Document, Query
from tests.tiny_d2s import save_tiny_d2s

NAME = "d2s-mscoco-blip"
WORDS = ["a", "red", "car", "cat", "dog", "on", "the", "road"]


@pytest.fixture
def built(tmp_path, monkeypatch):
    monkeypatch.setenv(PRESETS[NAME].variable, str(save_tiny_d2s(tmp_path / "d2s", WORDS)))
    rng = np.random.default_rng(1)
    paths = []
    for i, size in enumerate([(40, 24), (32, 32)]):
        paths.append(tmp_path / f"image{i}.png")
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(paths[-1])
    documents = (
        Document("t1", "text", "a red car on the road"),
        Document("t2", "text", "a cat and a dog"),
        Document("i1", "image", "", str(paths[0]), metadata={"caption": "a red car"}),
        Document("i2", "image", "", str(paths[1]), metadata={"caption": "a dog"}),
    )
    corpus = Corpus("tiny", documents)
    settings = Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")
    retriever_class = preset_retriever(NAME)
    retriever_class.build(corpus, Resources(settings, device="cpu"), tmp_path / "index")
    # loaded back in a fresh process's resources: the model is read again, the index from disk
    return retriever_class.load(corpus, Resources(settings, device="cpu"), tmp_path / "index"), paths


def brute_force(retriever, query_vector) -> list[tuple[str, float]]:
    ids = retriever.index.ids
    scores = (query_vector @ retriever.index.forward.T).toarray()[0]
    return sorted(((ids[i], float(scores[i])) for i in range(len(ids)) if scores[i] > 0), key=lambda p: -p[1])


def test_text_and_image_queries_search_the_seismic_index(built):
    retriever, paths = built
    assert isinstance(retriever.index, SparseIndex) and len(retriever.index) == 4
    model = retriever.model
    # the index holds the model's own document vectors: texts from the text side, images from the image side
    np.testing.assert_allclose(
        retriever.index.vector("t1").toarray(),
        model.encode_text_documents(["a red car on the road"]).toarray(),
        atol=1e-6,  # indexed in a batch of two, padded: float noise only
    )
    image = Image.open(paths[0]).convert("RGB")
    np.testing.assert_allclose(
        retriever.index.vector("i1").toarray(), model.encode_image_documents([image], [""]).toarray(), atol=1e-6
    )
    for query, vector in (
        (Query(text="red car"), model.encode_queries(["red car"])),
        (Query(image=image, image_sha="x"), model.encode_image_queries([image])),
    ):
        hits = retriever.search(query, k=4)
        expected = brute_force(retriever, vector)
        assert [h.doc_id for h in hits] == [doc for doc, _ in expected] and len(hits) >= 2
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-4)


def test_explain_lists_the_shared_terms(built):
    retriever, _ = built
    query = Query(text="red car")
    hit = retriever.search(query, k=1)[0]
    explained = retriever.explain(query, hit.doc_id)
    assert explained["shared_terms"] and all(t["contribution"] > 0 for t in explained["shared_terms"])
    assert explained["score"] == pytest.approx(hit.score, rel=1e-4)
    assert retriever.explain(query, "no-such-document") is None
