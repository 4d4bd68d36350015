"""What the Search tab shows for a hit whose retriever can explain its match (LSR's shared terms)."""

from __future__ import annotations

from mmr.corpus.format import Corpus
from mmr.retrievers.base import Retriever
from mmr.service import SearchService
from mmr.types import Document, Hit, Query
from webui.cards import card_markdown, column_record, document_markdown, sparse_markdown

EXPLANATION = {
    "method": "lsr",
    "score": 3.5,
    "query_terms": [{"term": "flower", "weight": 2.0}, {"term": "red", "weight": 1.0}],
    "document_terms": [{"term": "tree", "weight": 4.0}, {"term": "red", "weight": 3.0}],
    "shared_terms": [
        {"term": "red", "query_weight": 1.0, "document_weight": 3.0, "contribution": 3.0},
        {"term": "flower", "query_weight": 2.0, "document_weight": 0.25, "contribution": 0.5},
    ],
    "query_nonzeros": 2,
    "document_nonzeros": 3,
}


class Explaining(Retriever):
    """Returns two documents and explains only the first, as a sparse retriever does for its own index."""

    name = "explaining"

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        return [Hit("d1", 2.0, 1), Hit("d2", 1.0, 2)][:k]

    def explain(self, query: Query, doc_id: str) -> dict | None:
        return EXPLANATION if doc_id == "d1" else None

    @classmethod
    def build(cls, corpus, resources, folder):
        return cls()

    @classmethod
    def load(cls, corpus, resources, folder):
        return cls()


def _service() -> SearchService:
    docs = (Document("d1", "text", "a red tree"), Document("d2", "text", "a dog"))
    service = SearchService(resources=None, collections={"c": Corpus("c", docs)})
    service.retrievers[("explaining", "c")] = Explaining()
    return service


def test_search_asks_for_explanations_only_when_told():
    service, query = _service(), Query(text="red flower")
    assert service.search(query, ["explaining"], "c")[0].explanations == {}
    result = service.search(query, ["explaining"], "c", explain=True)[0]
    assert result.explanations == {"d1": EXPLANATION}  # d2 has none: nothing is made up for it


def test_card_and_detail_show_the_shared_terms():
    service = _service()
    result = service.search(Query(text="red flower"), ["explaining"], "c", explain=True)[0]
    docs = {d.id: d for d in service.collections["c"].documents}
    column = column_record(result, docs)
    explained, plain = column["hits"]
    assert "explanation" not in plain
    assert "shared: red, flower" in card_markdown(docs["d1"], explained, [])
    assert "shared" not in card_markdown(docs["d2"], plain, [])
    detail = document_markdown(docs["d1"], [], explained["explanation"], "Dense2Sparse LSR")
    assert "Why Dense2Sparse LSR matched: score 3.500" in detail
    assert "| red | 1.00 | 3.00 | 3.000 |" in detail
    assert "**Document's top words:** tree (4.00), red (3.00)" in detail
    assert "Why" not in document_markdown(docs["d2"], [], None, "x")


def test_card_and_detail_show_what_a_dense_model_reads_in_an_image():
    doc = Document("img", "image", "A frog.", image_path="/nowhere.png")
    explanation = {
        "method": "univl-dr",
        "class_names": "tree frog, bullfrog",
        "borrowed_captions": [{"caption": "green frog", "weight": 0.7}, {"caption": "A toad.", "weight": 0.3}],
        "borrowed_weight": 0.5,
    }
    hit = {"rank": 1, "score": 0.9, "doc_id": "img", "explanation": explanation}
    assert "borrowed: green frog; A toad." in card_markdown(doc, hit, [])
    assert "shared:" not in card_markdown(doc, hit, [])
    detail = document_markdown(doc, [], explanation, "UniVL-DR")
    assert "What UniVL-DR reads in this image" in detail
    assert "tree frog, bullfrog" in detail and "added at weight 0.5" in detail
    assert "| green frog | 0.70 |" in detail and "| A toad. | 0.30 |" in detail
    assert "Why" not in detail  # not laid out as a sparse match


def test_detail_says_how_much_of_the_score_its_words_leave_out():
    explanation = {**EXPLANATION, "score": 4.0, "other_shared": {"terms": 2, "contribution": 0.6}}
    detail = "\n".join(sparse_markdown(explanation, "Dense2Sparse LSR"))
    assert "Other shared terms (word pieces, punctuation, stop words): 2, 0.600 of the score (15%)." in detail
    assert "Other shared" not in "\n".join(sparse_markdown(EXPLANATION, "Dense2Sparse LSR"))
