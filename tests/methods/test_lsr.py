"""Dense2Sparse LSR on tiny data: the head's expansion control, the schedules, the distillation loss,
the inverted index against brute force, explanations, and staleness of the index."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.index import IndexMismatchError, IndexParams
from mmr.methods.lsr.dev import DevProbe, choose_query_cut, postings_per_query
from mmr.methods.lsr.head import (
    SparseHead,
    TermSubsetHead,
    Vocabulary,
    distillation_loss,
    expansion_off_probability,
    flops_penalty,
    l1_penalty,
    regulariser_weight,
)
from mmr.methods.lsr.index import CENTROID_FRACTION, SUMMARY_ENERGY, SparseIndex
from mmr.methods.lsr.model import LSRConfig, LSRModel, keep_heaviest, prune_row, prune_rows
from mmr.methods.lsr.report import (
    first_own_rank_median,
    heaviest_term_is_own,
    longest_lists_share,
    report_markdown,
    sparse_report,
    top_terms_own_share,
)
from mmr.methods.lsr.retriever import LSRRetriever, explain_match
from mmr.methods.lsr.settings import LSRTraining
from mmr.methods.lsr.tables import TeacherTables
from mmr.methods.lsr.training import train_epoch
from mmr.methods.lsr.words import Word, words_of
from mmr.retrievers.base import Resources
from mmr.training.common import Manifest
from mmr.types import Document, Query

WORDS = ["a", "red", "blue", "flower", "cat", "dog", "house", "tree", "big", "small", "##s", "."]


@pytest.fixture(scope="module")
def vocabulary():
    from transformers import BertTokenizerFast

    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", *WORDS]
    return Vocabulary(BertTokenizerFast(vocab={name: i for i, name in enumerate(names)}))


def _ids(vocabulary, words):
    return sorted(vocabulary.tokenizer.convert_tokens_to_ids(words))


def _head(vocabulary, in_dim=8, bias=2.0, seed=0):
    torch.manual_seed(seed)
    # A positive bias makes (almost) every term active: whatever is zero then is zero because of the mask.
    head = SparseHead(in_dim, torch.randn(vocabulary.size, 6), vocabulary.usable)
    with torch.no_grad():
        head.decoder.bias.fill_(bias)
    return head


class FakeTeacher:
    """A deterministic dual encoder: a text's vector is the sum of seeded random vectors of its words."""

    needs_grid = False
    dim = 8

    def encode_texts(self, texts):
        rows = []
        for text in texts:
            vector = np.zeros(self.dim, np.float32)
            for word in text.lower().split():
                vector += np.random.default_rng(sum(map(ord, word))).normal(size=self.dim).astype(np.float32)
            rows.append(vector / max(np.linalg.norm(vector), 1e-6))
        return np.stack(rows)

    def encode_images(self, features):
        return np.asarray(features.pooled[:, : self.dim], np.float32)


def test_own_terms_leave_out_special_tokens(vocabulary):
    (terms,) = vocabulary.own_terms(["A red flower flower."])
    assert terms.tolist() == _ids(vocabulary, ["a", "red", "flower", "."])


def test_head_without_expansion_weights_only_the_texts_own_tokens(vocabulary):
    head = _head(vocabulary)
    dense = torch.randn(2, 8)
    own = vocabulary.own_terms(["red flower", "a big dog"])
    restricted = head(dense, vocabulary.mask(own))
    expanded = head(dense)
    for row, terms in enumerate(own):
        assert set(torch.nonzero(restricted[row]).ravel().tolist()) <= set(terms.tolist())
        # restriction masks the same weights, it does not compute different ones
        torch.testing.assert_close(restricted[row, terms], expanded[row, terms])
        others = np.setdiff1d(np.flatnonzero(vocabulary.usable.numpy()), terms)
        assert (expanded[row, others] > 0).sum() > 0  # with expansion, other terms get weight too


def test_special_and_unused_slots_never_get_weight(vocabulary):
    weights = _head(vocabulary, bias=5.0)(torch.randn(4, 8))
    banned = vocabulary.tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]"])
    assert (weights[:, banned] == 0).all()
    assert (weights >= 0).all()


def test_l1_warmup_is_quadratic_and_expansion_control_anneals_over_95_percent():
    assert regulariser_weight(0, 100, 2.0) == 0.0
    assert regulariser_weight(25, 100, 2.0) == pytest.approx(2.0 / 16)
    assert regulariser_weight(50, 100, 2.0) == pytest.approx(2.0 / 4)
    assert regulariser_weight(100, 100, 2.0) == regulariser_weight(500, 100, 2.0) == 2.0
    assert expansion_off_probability(0, 1000) == 1.0
    assert expansion_off_probability(475, 1000) == pytest.approx(0.5)
    assert expansion_off_probability(950, 1000) == expansion_off_probability(999, 1000) == 0.0
    assert expansion_off_probability(950, 1000, floor=0.5) == 0.5  # the (non-paper) floor holds to the end
    assert expansion_off_probability(0, 1000, floor=0.5) == 1.0


def test_flops_penalises_long_posting_lists_where_l1_sees_no_difference():
    shared = torch.zeros(4, 6)
    shared[:, 0] = 1.0  # every vector on term 0: one posting list of 4 documents
    spread = torch.eye(4, 6)  # each vector on its own term: four lists of 1
    assert l1_penalty(shared) == l1_penalty(spread) == 1.0
    assert flops_penalty(shared) == pytest.approx(1.0)
    assert flops_penalty(spread) == pytest.approx(4 * (1 / 4) ** 2)
    query = torch.zeros(1, 6)
    query[0, 0] = 0.5
    assert postings_per_query(query, shared) == 4.0 and postings_per_query(query, spread) == 1.0


def test_distillation_loss_is_smallest_when_the_student_copies_the_teacher():
    torch.manual_seed(0)
    q_dense, d_dense = torch.randn(5, 4), torch.randn(5, 4)
    tau = 0.5
    teacher_logits = q_dense @ d_dense.T / tau
    copy = distillation_loss(q_dense / tau, d_dense, q_dense, d_dense, tau)
    entropy = -(teacher_logits.softmax(1) * teacher_logits.log_softmax(1)).sum(1).mean()
    entropy_t = -(teacher_logits.T.softmax(1) * teacher_logits.T.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(copy, (entropy + entropy_t) / 2)
    shuffled = distillation_loss(q_dense[[1, 0, 2, 3, 4]] / tau, d_dense, q_dense, d_dense, tau)
    assert shuffled > copy
    # both directions count: swapping the roles of queries and documents gives the same loss
    torch.testing.assert_close(distillation_loss(d_dense / tau, q_dense, d_dense, q_dense, tau), copy)


def test_hard_negatives_are_the_teachers_nearest_images_to_the_query_never_the_positive_nor_a_text():
    # documents 0-3 are images, 4-5 texts; query q sits nearest image q
    queries = torch.eye(4, 3)
    documents = torch.tensor([[1.0, 0, 0], [0.9, 0.5, 0], [0, 1.0, 0.1], [0, 0.2, 1.0], [1.0, 1.0, 1.0], [5.0, 0, 0]])
    tables = TeacherTables(
        queries,
        [np.zeros(0, np.int64)] * 4,
        documents,
        [None] * 4 + [np.zeros(0, np.int64)] * 2,
        query_row=np.array([0, 1, 2, 3]),
        document_row=np.array([0, 2, 3, 4]),  # the last example's positive is a text
        images=4,
    )
    tables.mine_image_neighbours(2)
    # query 0 = (1, 0, 0): its positive (image 0) left out, image 1 (0.9) first; text 5 (5.0) never
    assert tables.hard_rows[0, 0] == 1
    assert tables.hard_rows[1].tolist() == [1, 3]  # query (0, 1, 0): image 2 is its positive
    assert tables.hard_rows[2, 0] == 2  # query (0, 0, 1): image 3 is its positive, image 2 (0.1) next
    assert (tables.hard_rows[3] == -1).all()  # a text positive gets none
    drawn = tables.hard_negatives_for(np.array([0, 1, 3]), np.random.default_rng(0))
    assert len(drawn) == 2 and drawn[0] in tables.hard_rows[0] and drawn[1] in (1, 3)


def _toy_training(anneal_fraction: float, epochs: int = 12, **overrides):
    """48 pairs whose queries own 3 random terms; the documents are 'images' (never restricted)."""
    from transformers import BertTokenizerFast

    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[f"w{i}" for i in range(300)]]
    vocabulary = Vocabulary(BertTokenizerFast(vocab={name: i for i, name in enumerate(names)}))
    rng = np.random.default_rng(0)
    n, dim = 48, 16
    queries = torch.from_numpy(rng.normal(size=(n, dim)).astype(np.float32))
    documents = queries + 0.3 * torch.from_numpy(rng.normal(size=(n, dim)).astype(np.float32))
    terms = [np.sort(rng.choice(np.arange(5, 305), 3, replace=False)) for _ in range(n)]
    tables = TeacherTables(queries, terms, documents, [None] * n, np.arange(n), np.arange(n))
    settings = {"penalty_query": 1e-4, "penalty_document": 1e-4, **overrides}
    hp = LSRTraining(
        epochs=epochs,
        batch_size=16,
        learning_rate=1e-2,
        teacher_temperature=0.1,
        anneal_fraction=anneal_fraction,
        **settings,
    )
    torch.manual_seed(0)
    head = SparseHead(dim, torch.randn(vocabulary.size, 32), vocabulary.usable)
    optimizer = torch.optim.AdamW(head.parameters(), lr=hp.learning_rate)
    step, restricted = 0, []
    for epoch in range(epochs):
        step, stats = train_epoch(head, tables, vocabulary, optimizer, hp, rng, step, epochs * 3, f"e{epoch}")
        restricted.append(stats["restricted_batches"])
    with torch.no_grad():
        own_token_scores = head(queries, vocabulary.mask(terms)) @ head(documents).T
        postings = postings_per_query(head(queries), head(documents))
    # how often a query that may only use its own terms finds its document: the images must have
    # learnt to put weight on their captions' words
    return restricted, float((own_token_scores.argmax(1) == torch.arange(n)).float().mean()), postings


def test_expansion_control_teaches_images_their_captions_words():
    restricted, found, _ = _toy_training(anneal_fraction=0.95)
    assert restricted[-1] == 0 and sum(restricted[:2]) >= 4  # p: 1 -> 0 over 95% of the steps
    never_restricted, found_without, _ = _toy_training(anneal_fraction=1e-9)
    assert sum(never_restricted) <= 1  # only the very first batch (p = 1 at step 0)
    assert found > 0.35 and found > 3 * found_without


def test_the_head_distils_on_the_query_vectors_it_will_read(vocabulary):
    """With a query student, the head reads the student's vectors in training, as it will when serving; the
    teacher's scores stay the target."""
    rng = np.random.default_rng(0)
    n, dim = 8, 8
    queries, documents = torch.randn(n, dim), torch.randn(n, dim)
    terms = vocabulary.own_terms(["red flower"] * n)
    tables = TeacherTables(queries, terms, documents, [None] * n, np.arange(n), np.arange(n))
    tables.query_inputs = torch.randn(n, dim)  # the student's
    head, read = _head(vocabulary), []
    original = head.queries
    head.queries = lambda dense, own, expand: read.append(dense.clone()) or original(dense, own, expand)
    hp = LSRTraining(epochs=1, batch_size=n)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
    train_epoch(head, tables, vocabulary, optimizer, hp, rng, 0, 1, "e")
    assert len(read) == 1 and not torch.equal(read[0], queries[: len(read[0])])
    order = [int(np.flatnonzero((tables.query_inputs == row).all(1).numpy())[0]) for row in read[0]]
    assert sorted(order) == list(range(n))  # every row the head read is a student's vector


def test_the_flops_penalty_shortens_the_lists_a_query_traverses():
    postings = {
        weight: _toy_training(0.95, penalty="flops", penalty_query=weight, penalty_document=weight)[2]
        for weight in (0.0, 1.0)
    }
    assert postings[1.0] < 0.5 * postings[0.0]


def test_dev_probe_restricts_text_documents_but_not_images_and_scores_like_brute_force(vocabulary):
    from mmr.training.data import mrr_at_10

    probe = DevProbe.__new__(DevProbe)  # the attributes __init__ derives from a collection, set by hand
    torch.manual_seed(0)
    probe.name, probe.vocabulary = "toy", vocabulary
    probe.doc_ids = ["image0", "text0", "text1"]
    probe.documents, probe.queries = torch.randn(3, 8), torch.randn(2, 8)
    probe.query_inputs = probe.queries
    probe.document_terms = [None, *vocabulary.own_terms(["a red flower", "big dog"])]
    assert vocabulary.own_terms([]) == []  # the stamps have no text documents
    probe.query_terms = vocabulary.own_terms(["red flower", "dog"])
    probe.qids, probe.qrels = ["q0", "q1"], {"q0": {"text0": 1}, "q1": {"image0": 1}}
    head = _head(vocabulary, bias=50.0)  # every usable term carries weight unless masked
    queries, documents = probe.encode(head, expand=False)
    allowed = vocabulary.mask(probe.document_terms[1:])
    assert (documents[1:][~allowed] == 0).all() and (documents[1:][allowed & vocabulary.usable] > 0).all()
    assert (documents[0][vocabulary.usable] > 0).all()  # the image expands (the toy vocabulary is under the cap)
    assert (queries[0] > 0).sum() == 2  # "red", "flower"
    expected = mrr_at_10(documents.numpy(), probe.doc_ids, queries.numpy(), probe.qids, probe.qrels)
    assert probe.mrr(queries, documents) == pytest.approx(expected)
    # dev prunes queries with the retriever's own prune_row: a cut of one term is the heaviest term alone
    cut_scores = probe.query_cut_scores(head, expand=False, cuts=(1, vocabulary.size))
    heaviest = sp.vstack([prune_row(sp.csr_matrix(q.numpy()), 1) for q in queries])
    assert cut_scores[1] == pytest.approx(probe.mrr(heaviest, documents))
    assert cut_scores[vocabulary.size] == pytest.approx(probe.mrr(queries, documents))
    scores = probe.score(head)
    assert set(scores) >= {"dev_toy_expanded", "dev_toy_own_tokens", "toy_expanded_postings_per_query"}
    # own tokens only: a query's heaviest term can only be its own
    assert scores["toy_own_tokens_heaviest_term_own"] == 1.0
    assert 0 < scores["toy_expanded_longest_1pct_lists_share"] <= 1
    # each mode reports its own documents: the texts carry every usable term only when they expand
    assert scores["toy_expanded_document_nonzeros"] > scores["toy_own_tokens_document_nonzeros"]


def _random_sparse(rng, rows, vocab, density, empty_rows=()):
    matrix = sp.random(rows, vocab, density=density, format="csr", dtype=np.float32, random_state=rng)
    matrix.data = np.log1p(matrix.data * 5).astype(np.float32)
    for row in empty_rows:
        matrix.data[matrix.indptr[row] : matrix.indptr[row + 1]] = 0
    matrix.eliminate_zeros()
    return matrix


@pytest.mark.parametrize(
    ("n", "vocab", "density", "k"),
    [(1, 13, 0.3, 1), (7, 97, 0.3, 3), (257, 997, 0.05, 10), (1031, 3001, 0.01, 50), (5, 50, 0.3, 20)],
)
@pytest.mark.parametrize(  # Seismic's defaults, and the ones the LSR index is built with
    ("centroid_fraction", "summary_energy"), [(0.1, 0.4), (CENTROID_FRACTION, SUMMARY_ENERGY)]
)
def test_inverted_index_agrees_with_brute_force(n, vocab, density, k, centroid_fraction, summary_energy):
    rng = np.random.default_rng(n + vocab)
    forward = _random_sparse(rng, n, vocab, density, empty_rows=[0] if n > 1 else [])
    params = IndexParams("lsr", "test", vocab, "c", "fp")
    ids = [f"d{i}" for i in range(n)]
    index = SparseIndex(forward, ids, params, centroid_fraction=centroid_fraction, summary_energy=summary_energy)
    queries = _random_sparse(rng, 20, vocab, 0.05 if vocab > 100 else 0.3)
    for query in queries:
        expected = index.search_exact(query, k)
        assert [h.doc_id for h in index.search(query, k)] == [h.doc_id for h in expected]
        assert all(h.score > 0 for h in expected) and len(expected) <= k
        if n > 1:
            assert "d0" not in {h.doc_id for h in expected}  # a document without terms never matches
    assert index.search(sp.csr_matrix((1, vocab), dtype=np.float32), k) == []


def test_the_index_walks_only_the_lists_of_the_heaviest_query_terms_it_is_given():
    # d0 holds only term 1, d1 only term 2; the query weighs term 1 most. Walking term 1's list alone never
    # meets d1; walking both finds both, each scored with the whole query.
    forward = sp.csr_matrix(np.array([[0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]], np.float32))
    index = SparseIndex(forward, ["d0", "d1", "d2"], IndexParams("lsr", "test", 4, "c", "fp"))
    query = sp.csr_matrix(np.array([[0, 2.0, 1.0, 0]], np.float32))
    assert [(h.doc_id, h.score) for h in index.search(query, 3)] == [("d0", 2.0), ("d1", 1.0)]
    assert [(h.doc_id, h.score) for h in index.search(query, 3, lists=1)] == [("d0", 2.0)]
    assert [h.doc_id for h in index.search(query, 3, lists=5)] == ["d0", "d1"]


def test_index_roundtrip_and_mismatch(tmp_path):
    rng = np.random.default_rng(3)
    forward = _random_sparse(rng, 40, 200, 0.1)
    params = IndexParams("lsr", "lsr@abc/teacher@1", 200, "c", "fp")
    SparseIndex(forward, [f"d{i}" for i in range(40)], params).save(tmp_path / "idx")
    loaded = SparseIndex.load(tmp_path / "idx", params, "retrain")
    query = forward[7]
    assert loaded.search(query, 1)[0].doc_id == "d7"
    assert json.loads((tmp_path / "idx" / "params.json").read_text())["count"] == 40
    with pytest.raises(IndexMismatchError, match="encoder.*retrain"):
        SparseIndex.load(tmp_path / "idx", IndexParams("lsr", "lsr@new/teacher@1", 200, "c", "fp"), "retrain")
    with pytest.raises(IndexMismatchError, match="no LSR index"):
        SparseIndex.load(tmp_path / "missing", params, "retrain")
    # A build setting in ``extra`` (here Seismic's block size) that the index was not built with is stale too.
    other_blocks = IndexParams("lsr", "lsr@abc/teacher@1", 200, "c", "fp", extra={"centroid_fraction": 0.5})
    with pytest.raises(IndexMismatchError, match="centroid_fraction: index has None, expected 0.5"):
        SparseIndex.load(tmp_path / "idx", other_blocks, "retrain")
    (tmp_path / "idx" / "index.index.seismic").unlink()
    with pytest.raises(IndexMismatchError, match="index.seismic; retrain"):
        SparseIndex.load(tmp_path / "idx", params, "retrain")


def test_explain_lists_the_shared_terms_by_contribution(vocabulary):
    ids = dict(zip(WORDS, vocabulary.tokenizer.convert_tokens_to_ids(WORDS), strict=True))

    def vector(weights):
        row = np.zeros((1, vocabulary.size), np.float32)
        for word, weight in weights.items():
            row[0, ids[word]] = weight
        return sp.csr_matrix(row)

    query = vector({"red": 1.0, "flower": 2.0, "cat": 0.5})
    document = vector({"flower": 0.5, "red": 3.0, "tree": 4.0})
    explanation = explain_match(query, document, vocabulary)
    assert [t["term"] for t in explanation["shared_terms"]] == ["red", "flower"]  # 3.0 before 1.0
    assert explanation["shared_terms"][0] == {
        "term": "red",
        "query_weight": 1.0,
        "document_weight": 3.0,
        "contribution": 3.0,
    }
    assert explanation["score"] == pytest.approx(float((query @ document.T).toarray()[0, 0]))
    assert [t["term"] for t in explanation["document_terms"]] == ["tree", "red", "flower"]
    assert explain_match(query, vector({"dog": 1.0}), vocabulary)["shared_terms"] == []


def test_explanations_show_words_and_sum_the_rest(vocabulary):
    """Pieces of a word of the text are joined; punctuation, stop words and stray pieces are a remainder."""
    ids = dict(zip(WORDS, vocabulary.tokenizer.convert_tokens_to_ids(WORDS), strict=True))
    weights = {"red": 1.0, "flower": 2.0, "##s": 0.5, "a": 3.0, ".": 4.0, "dog": 0.25}
    query = sp.csr_matrix(
        ([*weights.values()], ([0] * len(weights), [ids[w] for w in weights])), shape=(1, vocabulary.size)
    )
    document = query.copy()
    explanation = explain_match(query, document, vocabulary, query_text="a red flowers.", document_text="dog")
    shared = {t["term"]: t["contribution"] for t in explanation["shared_terms"]}
    assert shared == {"flowers": pytest.approx(2.0**2 + 0.5**2), "red": 1.0, "dog": 0.0625}
    assert explanation["other_shared"] == {"terms": 2, "contribution": pytest.approx(3.0**2 + 4.0**2)}  # "a", "."
    assert sum(shared.values()) + explanation["other_shared"]["contribution"] == pytest.approx(explanation["score"])
    assert [t["term"] for t in explanation["query_terms"]] == ["flowers", "red", "dog"]
    # without the text, "##s" is a piece of no word: it goes to the remainder, "flower" stands alone
    assert [t["term"] for t in explanation["document_terms"]] == ["flower", "red", "dog"]
    assert words_of("a red flowers.", vocabulary.tokenizer) == [
        Word("red", (ids["red"],)),
        Word("flowers", (ids["flower"], ids["##s"])),
    ]


def _model(vocabulary):
    config = LSRConfig("zeroshot-verbal", "zeroshot-verbal@x", 8, 6, vocabulary.size, expand_texts=False)
    return LSRModel(config, _head(vocabulary, bias=5.0), vocabulary, FakeTeacher())


def _text_retriever(vocabulary, tmp_path, texts=("a red flower", "a big dog", "blue house")):
    model = _model(vocabulary)
    docs = [Document(f"t{i}", "text", text) for i, text in enumerate(texts)]
    corpus = Corpus("c", tuple(docs))
    index = SparseIndex(
        LSRRetriever.encode_corpus(model, corpus, None),
        [d.id for d in docs],
        IndexParams("lsr", "x", vocabulary.size, "c", corpus.fingerprint),
    )
    return LSRRetriever(Resources(Settings(index_store=tmp_path)), model, index), corpus


def test_retriever_searches_and_explains_text_documents(vocabulary, tmp_path):
    retriever, _ = _text_retriever(vocabulary, tmp_path)
    hits = retriever.search(Query(text="big dog"), k=3)
    assert hits[0].doc_id == "t1"  # own tokens only: "big" and "dog" are the only way to score
    explanation = retriever.explain(Query(text="big dog"), "t1")
    assert {t["term"] for t in explanation["shared_terms"]} == {"big", "dog"}
    assert explanation["score"] == pytest.approx(hits[0].score, rel=1e-5)
    assert retriever.explain(Query(text="big dog"), "unknown") is None


def test_batched_text_search_matches_one_query_at_a_time(vocabulary, tmp_path):
    retriever, _ = _text_retriever(vocabulary, tmp_path, ("a red flower", "a big dog", "blue house", "red house"))
    queries = [Query(text="red house"), Query(text="big dog"), Query(text="a flower")]
    batched = retriever.search_many(queries, k=3)
    assert [[(h.doc_id, round(h.score, 5)) for h in hits] for hits in batched] == [
        [(h.doc_id, round(h.score, 5)) for h in retriever.search(q, k=3)] for q in queries
    ]
    assert batched[0][0].doc_id == "t3"
    # with query pruning on, both paths keep the same single heaviest term (the trailing space makes a new
    # cache key, so search() cannot answer from the unpruned vectors cached above; tokens are the same)
    from dataclasses import replace

    retriever.model.config = replace(retriever.model.config, query_terms=1)
    pruned = retriever.search_many(queries, k=3)
    assert [[h.doc_id for h in hits] for hits in pruned] == [
        [h.doc_id for h in retriever.search(Query(text=q.text + " "), k=3)] for q in queries
    ]
    assert all(vector.nnz == 1 for vector in retriever.encode_text_queries([q.text for q in queries]))


def test_the_head_on_a_subset_of_terms_weighs_each_of_them_as_the_whole_head_does(vocabulary):
    head = _head(vocabulary, bias=0.5)
    dense = torch.randn(3, 8)
    terms = np.array([0, *sorted(_ids(vocabulary, ["red", "flower", "dog"]))])  # [PAD] is unusable: dropped
    whole, part = head(dense).detach().numpy(), TermSubsetHead(head, terms).sparse(dense.numpy())
    kept = terms[1:]
    assert part.shape == whole.shape and part.nnz > 0 and part.has_sorted_indices
    np.testing.assert_allclose(part.toarray()[:, kept], whole[:, kept], rtol=1e-5, atol=1e-6)
    assert set(part.indices) <= set(kept)
    own = vocabulary.own_terms(["red dog", "flower", "big"])
    restricted = TermSubsetHead(head, terms).sparse(dense.numpy(), own).toarray()
    np.testing.assert_allclose(restricted, part.toarray() * vocabulary.mask(own).numpy(), rtol=1e-6)


def test_an_expanded_query_searches_the_index_terms_alone_and_finds_what_its_whole_vector_finds(vocabulary, tmp_path):
    texts = ("a red flower", "a big dog", "blue house", "red house", "small cat")
    retriever, _ = _text_retriever(vocabulary, tmp_path, texts)
    from dataclasses import replace

    retriever.model.config = replace(retriever.model.config, expand_texts=True)  # queries expand; documents do not
    held = set(np.flatnonzero(retriever.index.document_frequency))
    for text in ("red dog", "a blue cat", "tree"):
        searched, whole = retriever.encode_query(Query(text=text)), retriever.encode_query(Query(text=text), True)
        assert set(searched.indices) == held & set(whole.indices) and set(whole.indices) - held  # expanded
        np.testing.assert_allclose(searched.data, whole.toarray()[0, searched.indices], rtol=1e-5, atol=1e-6)
        expected = retriever.index.search_exact(whole, 3)
        assert [(h.doc_id, round(h.score, 5)) for h in retriever.search(Query(text=text), k=3)] == [
            (h.doc_id, round(h.score, 5)) for h in expected
        ]
        hit = expected[0].doc_id
        assert retriever.explain(Query(text=text), hit)["score"] == pytest.approx(expected[0].score, rel=1e-5)
    # with a query cut, the whole query's heaviest terms include some no document holds: the explanation's
    # shared words still add up to the hit's score, and its query words are the whole query's
    retriever.model.config = replace(retriever.model.config, query_terms=3)
    query = Query(text="red dog ")
    hit = retriever.search(query, k=1)[0]
    explanation = retriever.explain(query, hit.doc_id)
    assert explanation["score"] == pytest.approx(hit.score, rel=1e-5)
    whole = retriever.encode_query(query, whole=True)
    assert whole.nnz == 3 and set(whole.indices) - held  # the cut whole query reaches beyond the index


def test_model_roundtrip_and_stale_teacher_is_detected(vocabulary, tmp_path):
    settings = Settings(index_store=tmp_path)
    resources = Resources(settings)
    model = _model(vocabulary)
    folder = settings.models_dir / "lsr"
    model.save(folder)
    loaded = LSRModel.load(folder, resources, teacher=FakeTeacher())
    texts = ["a red flower", "cats and dogs"]
    assert (loaded.encode_texts(texts) != model.encode_texts(texts)).nnz == 0
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "teacher": "marvel", "teacher_tag": "marvel@old"}))
    Manifest("lsr", "d", 0.1, 0, 1.0).save(folder)
    Manifest("marvel", "d", 0.3, 0, 1.0).save(settings.models_dir / "marvel")
    corpus = Corpus("c", (Document("t0", "text", "a red flower"),))
    with pytest.raises(IndexMismatchError, match="teacher changed.*mmr train lsr"):
        LSRRetriever.params_for(corpus, resources)


def test_sparse_report_counts_terms_and_postings(vocabulary, tmp_path):
    retriever, corpus = _text_retriever(vocabulary, tmp_path, ("a red flower", "a big dog", "blue house", "red house"))
    report = sparse_report(retriever, corpus, {"q1": "red house", "q2": "big dog"}, relatives={})
    # own tokens only (expand_texts=False): "red house" has 2 terms; "red" is in 2 documents, "house" in 2
    assert report["query_nonzeros_mean"] == pytest.approx(2.0)
    assert report["postings_per_query_mean"] == pytest.approx((4 + 2) / 2)  # big: 1 doc, dog: 1 doc
    assert report["document_nonzeros_mean"] == {"text": pytest.approx((3 + 3 + 2 + 2) / 4)}
    assert report["collection_nonzeros"] == 10 and report["dense_multiply_adds"] == 4 * 8
    assert report["top10_agreement_with_brute_force"] == 1.0
    assert report["heaviest_term_is_own_token"] == 1.0  # own tokens only: nothing else can be heaviest
    assert report["top10_terms_own_share"] == 1.0 and report["first_own_token_rank_median"] == 1.0
    # 7 non-empty lists, the longest ("a", "red", "house") 2 postings long: 1% of them is one list, 2 of 10
    assert report["postings_share_of_longest_1pct_lists"] == pytest.approx(2 / 10)
    table = report_markdown(report, 0.45, "marvel", 0.5)
    assert "| postings held by the 1% longest lists (co-activation) | 20.0% |" in table
    assert "| MRR@10: lsr / teacher marvel | 0.450 / 0.500 = 90.0% |" in table


def test_lexical_grounding_counts_queries_whose_heaviest_term_is_their_own(vocabulary):
    red, flower, cat = _ids(vocabulary, ["red"])[0], _ids(vocabulary, ["flower"])[0], _ids(vocabulary, ["cat"])[0]
    vectors = [
        sp.csr_matrix(([1.0, 2.0], ([0, 0], [red, flower])), shape=(1, vocabulary.size)),  # "flower": own
        sp.csr_matrix(([2.0, 1.0], ([0, 0], [cat, flower])), shape=(1, vocabulary.size)),  # "cat": not own
        sp.csr_matrix((1, vocabulary.size)),  # empty: not counted
    ]
    own = vocabulary.own_terms(["a red flower", "a red flower", "a red flower"])
    assert heaviest_term_is_own(vectors, own) == 0.5
    assert top_terms_own_share(vectors, own, 10) == pytest.approx((1.0 + 0.5) / 2)
    assert top_terms_own_share(vectors, own, 1) == pytest.approx(0.5)
    assert first_own_rank_median(vectors, own) == pytest.approx(1.5)  # ranks 1 and 2
    assert first_own_rank_median([vectors[1]], vocabulary.own_terms(["dog"])) is None


def test_coactivation_is_the_share_of_postings_in_the_longest_lists():
    lengths = np.array([0, 50, 30, 10, 5, 5] + [0] * 100 + [0])
    assert longest_lists_share(lengths, 0.01) == pytest.approx(50 / 100)  # 1% of 5 lists: the longest one
    assert longest_lists_share(lengths, 0.4) == pytest.approx(80 / 100)  # 2 lists
    assert longest_lists_share(np.zeros(5), 0.01) == 0.0


def test_documents_are_indexed_with_their_heaviest_terms_as_dev_scores_them(vocabulary, monkeypatch):
    import mmr.methods.lsr.retriever as retriever_module

    weights = torch.rand(4, 40)
    kept = keep_heaviest(weights, 7)
    assert ((kept > 0).sum(dim=1) == 7).all()
    assert np.allclose(kept.numpy(), prune_rows(sp.csr_matrix(weights.numpy()), 7).toarray())
    monkeypatch.setattr(retriever_module, "DOCUMENT_TERMS", 2)
    model = LSRModel(_model(vocabulary).config, _head(vocabulary, bias=5.0), vocabulary, FakeTeacher())
    model.config = LSRConfig(**{**model.config.__dict__, "expand_texts": True})  # texts expand: many terms
    corpus = Corpus("c", (Document("t0", "text", "a red flower"), Document("t1", "text", "a big dog")))
    indexed = LSRRetriever.encode_corpus(model, corpus, None)
    full = model.encode_texts(["a red flower", "a big dog"])
    assert np.diff(indexed.indptr).tolist() == [2, 2] and full.nnz > 4
    assert np.allclose(indexed.toarray(), prune_rows(full, 2).toarray())


def test_query_pruning_keeps_the_heaviest_terms_and_the_cut_is_the_smallest_that_costs_nothing():
    row = sp.csr_matrix(np.array([[0.0, 3.0, 0.5, 2.0, 0.0, 1.0]], np.float32))
    pruned = prune_row(row, 2)
    assert pruned.toarray().tolist() == [[0.0, 3.0, 0.0, 2.0, 0.0, 0.0]] and pruned.has_sorted_indices
    assert prune_row(row, None) is not None and prune_row(row, None).nnz == 4
    # the smallest cut within the tolerance of the whole query wins; none good enough: keep every term
    assert choose_query_cut({8: 0.10, 16: 0.196, 32: 0.2, 30522: 0.2}, 0.005) == 16
    assert choose_query_cut({8: 0.10, 16: 0.15, 30522: 0.2}, 0.005) is None


def test_the_teacher_is_the_one_named_or_the_best_trained_one(tmp_path):
    from mmr.methods.lsr.teacher import ZERO_SHOT_TEACHER, choose_teacher

    settings = Settings(index_store=tmp_path)
    assert choose_teacher(settings, "best") == ZERO_SHOT_TEACHER  # nothing trained yet
    with pytest.raises(FileNotFoundError, match="mmr train ciea"):
        choose_teacher(settings, "ciea")
    for name, score in (("ciea", 0.22), ("dense-inbatch", 0.23)):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "manifest.json").write_text(json.dumps({"dev_mrr_at_10": score}))
    assert choose_teacher(settings, "ciea") == "ciea"
    assert choose_teacher(settings, "best") == "dense-inbatch"
    with pytest.raises(ValueError, match="not one of"):
        LSRTraining(teacher="bm25")


def test_text_modes_are_checked_when_set_and_expanded_alone_by_default():
    assert LSRTraining().text_modes == ("expanded",)
    assert LSRTraining(text_modes=("expanded", "own_tokens")).text_modes == ("expanded", "own_tokens")
    for wrong in ((), ("expand",)):
        with pytest.raises(ValueError, match="text_modes"):
            LSRTraining(text_modes=wrong)


def test_pruning_many_rows_keeps_what_pruning_each_row_keeps_ties_and_empty_rows_included():
    rng = np.random.default_rng(0)
    rows = sp.random(60, 400, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    rows.data = np.round(rows.data * 4) / 4 + 0.25  # many equal weights
    rows = sp.vstack([rows[:10], sp.csr_matrix((1, 400), dtype=np.float32), rows[10:]], format="csr")
    for keep in (1, 3, 40, 1000):
        one_by_one = sp.vstack([prune_row(rows[i], keep) for i in range(rows.shape[0])], format="csr")
        together = prune_rows(rows, keep)
        assert together.nnz == one_by_one.nnz and (together != one_by_one).nnz == 0
    assert prune_rows(rows, None).nnz == rows.nnz
