"""The two baselines end to end on a handful of real stamps and the real packaged encoders."""

from pathlib import Path

import pytest

from mmr.corpus.format import Corpus
from mmr.index import IndexMismatchError
from mmr.retrievers.bm25 import BM25Retriever
from mmr.retrievers.zeroshot import VerbalisationRetriever
from mmr.types import Document, Query

STAMPS = Path("/usr/share/tuxpaint/stamps")
PICKS = {
    "pineapple": "food/fruit/pineapple.png",
    "frog": "animals/amphibians/frog.png",
    "apple": "food/fruit/apple_red.png",
}

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def corpus():
    if not STAMPS.exists():
        pytest.fail("Tux Paint stamps are missing: `apt-get install tuxpaint-stamps-default` (make test does it)")
    docs = [Document(f"img/{name}", "image", "", str(STAMPS / rel)) for name, rel in PICKS.items()]
    docs.append(Document("txt/pineapple", "text", "a tropical pineapple fruit with spiky leaves"))
    docs.append(Document("txt/engine", "text", "a machine that converts fuel into motion"))
    return Corpus("tiny", tuple(docs))


@pytest.mark.parametrize("retriever_class", [VerbalisationRetriever, BM25Retriever])
def test_image_query_finds_the_same_image_first(retriever_class, corpus, real_resources, tmp_path):
    from mmr.corpus.images import load_image

    retriever = retriever_class.build(corpus, real_resources, tmp_path / "idx")
    hits = retriever.search(Query(image=load_image(STAMPS / PICKS["frog"]), image_sha="x"), k=5)
    assert hits[0].doc_id == "img/frog"


def test_zero_shot_text_query_reaches_images_and_texts(corpus, real_resources, tmp_path):
    retriever = VerbalisationRetriever.build(corpus, real_resources, tmp_path / "idx")
    ranked = [hit.doc_id for hit in retriever.search(Query(text="pineapple"), k=5)]
    assert ranked.index("img/pineapple") < ranked.index("img/frog")
    assert ranked.index("txt/pineapple") < ranked.index("txt/engine")
    assert [h.rank for h in retriever.search(Query(text="pineapple"), k=5)] == [1, 2, 3, 4, 5]


def test_bm25_reads_verbalisations_not_captions(real_resources, tmp_path):
    # The caption says "engine"; BM25 must not find the image through it.
    docs = (
        Document("img/frog", "image", "engine engine", str(STAMPS / PICKS["frog"])),
        Document("txt/engine", "text", "a machine that converts fuel into motion engine"),
    )
    retriever = BM25Retriever.build(Corpus("c", docs), real_resources, tmp_path / "idx")
    assert [h.doc_id for h in retriever.search(Query(text="engine"), k=5)] == ["txt/engine"]
    assert retriever.search(Query(text="zzzunknownword the of"), k=5) == []


@pytest.mark.parametrize("retriever_class", [VerbalisationRetriever, BM25Retriever])
def test_stale_index_is_detected_with_the_rebuild_command(retriever_class, corpus, real_resources, tmp_path):
    retriever_class.build(corpus, real_resources, tmp_path / "idx")
    loaded = retriever_class.load(corpus, real_resources, tmp_path / "idx")
    assert loaded.search(Query(text="frog"), k=1)
    changed = Corpus("tiny", corpus.documents[:-1])
    with pytest.raises(IndexMismatchError, match="python -m mmr build"):
        retriever_class.load(changed, real_resources, tmp_path / "idx")
