"""The sparse retriever's inference-free query side: a text query is its own terms at learned weights.

Searching must run no encoder (that is what makes it cheaper than the teacher), documents still go through
the head, the weights survive a save and load, and distillation teaches them something: a term every query
holds (a stop word) ends up lighter than the terms that tell queries apart.
"""

import numpy as np
import pytest
import torch

from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.index import IndexParams
from mmr.methods.lsr.dev import DevProbe
from mmr.methods.lsr.head import SparseHead, Vocabulary
from mmr.methods.lsr.index import SparseIndex
from mmr.methods.lsr.model import LEXICAL_QUERIES, LSRConfig, LSRModel
from mmr.methods.lsr.retriever import LSRRetriever
from mmr.methods.lsr.settings import LSRTraining
from mmr.methods.lsr.tables import TeacherTables
from mmr.methods.lsr.training import head_optimizer, train_epoch
from mmr.retrievers.base import Resources
from mmr.types import Document, Query

WORDS = ["a", "red", "blue", "flower", "cat", "dog", "house", "tree", "big", "small", "."]


@pytest.fixture(scope="module")
def vocabulary():
    from transformers import BertTokenizerFast

    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", *WORDS]
    return Vocabulary(BertTokenizerFast(vocab={name: i for i, name in enumerate(names)}))


class TextsForbidden:
    """A teacher that encodes images (as documents need) but refuses texts: lexical queries must not ask."""

    needs_grid = False
    dim = 8

    def __init__(self):
        self.text_calls = 0

    def encode_texts(self, texts):
        self.text_calls += 1
        rng = np.random.default_rng(len(texts))
        return rng.normal(size=(len(texts), self.dim)).astype(np.float32)


def _lexical_model(vocabulary, teacher):
    torch.manual_seed(0)
    head = SparseHead(8, torch.randn(vocabulary.size, 6), vocabulary.usable, lexical_queries=True)
    with torch.no_grad():
        head.decoder.bias.fill_(5.0)  # documents: every usable term active
        weights = {"red": 2.0, "flower": 1.0, "a": -1.0, "dog": 0.5}  # "a" below zero: dropped from queries
        for word, value in weights.items():
            head.query_weights[vocabulary.tokenizer.convert_tokens_to_ids(word)] = value
    config = LSRConfig("zeroshot-verbal", "x", 8, 6, vocabulary.size, query_encoder=LEXICAL_QUERIES)
    return LSRModel(config, head, vocabulary, teacher)


def test_a_lexical_query_is_its_own_terms_at_their_weights_and_runs_no_encoder(vocabulary):
    teacher = TextsForbidden()
    model = _lexical_model(vocabulary, teacher)
    row = model.encode_queries(["a red flower ."])
    assert teacher.text_calls == 0
    names = dict(zip(vocabulary.terms(row.indices), row.data, strict=True))
    # "." kept its starting weight 1 -> log1p(1); "a" (weight below zero) left the query
    assert names == pytest.approx({"red": np.log1p(2.0), "flower": np.log1p(1.0), ".": np.log1p(1.0)})
    documents = model.encode_texts(["a red flower"])  # documents still go through the teacher and head
    assert teacher.text_calls == 1 and documents.nnz > row.nnz


def test_lexical_weights_survive_save_and_load(vocabulary, tmp_path):
    model = _lexical_model(vocabulary, TextsForbidden())
    model.save(tmp_path / "lsr")
    loaded = LSRModel.load(tmp_path / "lsr", Resources(Settings(index_store=tmp_path)), teacher=TextsForbidden())
    texts = ["a red flower", "big dog", "blue"]
    assert (loaded.encode_queries(texts) != model.encode_queries(texts)).nnz == 0
    assert loaded.encode_queries(["blue"]).nnz == 1  # an untouched term keeps its starting weight


def test_the_retriever_searches_and_explains_with_the_querys_own_words(vocabulary, tmp_path):
    model = _lexical_model(vocabulary, TextsForbidden())
    docs = tuple(Document(f"t{i}", "text", text) for i, text in enumerate(["a red flower", "a big dog"]))
    corpus = Corpus("c", docs)
    index = SparseIndex(
        LSRRetriever.encode_corpus(model, corpus, None),
        [d.id for d in docs],
        IndexParams("lsr", "x", vocabulary.size, "c", corpus.fingerprint),
    )
    retriever = LSRRetriever(Resources(Settings(index_store=tmp_path)), model, index)
    hits = retriever.search(Query(text="a red flower"), k=2)
    explanation = retriever.explain(Query(text="a red flower"), hits[0].doc_id)
    assert {t["term"] for t in explanation["query_terms"]} == {"red", "flower"}
    assert explanation["score"] == pytest.approx(hits[0].score, rel=1e-5)


def test_distillation_makes_a_term_every_query_holds_lighter_than_the_terms_that_tell_them_apart():
    from transformers import BertTokenizerFast

    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[f"w{i}" for i in range(200)]]
    vocabulary = Vocabulary(BertTokenizerFast(vocab={name: i for i, name in enumerate(names)}))
    rng = np.random.default_rng(0)
    n, dim, common = 48, 16, 5  # term 5 ("w0") is in every query
    queries = torch.from_numpy(rng.normal(size=(n, dim)).astype(np.float32))
    documents = queries + 0.3 * torch.from_numpy(rng.normal(size=(n, dim)).astype(np.float32))
    terms = [np.sort(np.append(rng.choice(np.arange(6, 205), 3, replace=False), common)) for _ in range(n)]
    tables = TeacherTables(queries, terms, documents, [None] * n, np.arange(n), np.arange(n))
    hp = LSRTraining(
        epochs=30,
        batch_size=16,
        learning_rate=1e-2,
        teacher_temperature=0.1,
        penalty_query=1e-3,
        penalty_document=1e-4,
        query_encoder=LEXICAL_QUERIES,
        query_weights_learning_rate=5e-2,
    )
    torch.manual_seed(0)
    head = SparseHead(dim, torch.randn(vocabulary.size, 32), vocabulary.usable, lexical_queries=True)
    optimizer, step = head_optimizer(head, hp), 0
    for epoch in range(hp.epochs):
        step, _ = train_epoch(head, tables, vocabulary, optimizer, hp, rng, step, hp.epochs * 3, f"e{epoch}")
    with torch.no_grad():
        weights = head.term_weights()
        own = vocabulary.mask(terms)
        found = (head.queries(queries, own, expand=True) @ head(documents).T).argmax(1) == torch.arange(n)
    distinctive = torch.cat([weights[torch.as_tensor(t[t != common])] for t in terms])
    assert weights[common] < min(np.log1p(1.0), float(distinctive.median()))  # fell from its start, below most
    assert float(found.float().mean()) > 0.5  # chance is 1/48: the documents learnt their queries' words


def test_the_dev_probe_scores_lexical_queries_as_the_retriever_builds_them(vocabulary):
    model = _lexical_model(vocabulary, TextsForbidden())
    probe = DevProbe.__new__(DevProbe)  # the probe's tensors by hand, without a collection on disk
    probe.vocabulary = vocabulary
    probe.queries = probe.query_inputs = torch.zeros(2, 8)  # a lexical query never reads its teacher vector
    probe.query_terms = vocabulary.own_terms(["a red flower", "big dog"])
    probe.documents = torch.randn(3, 8)
    probe.document_terms = [None, None, None]
    for expand in (True, False):
        queries, _ = probe.encode(model.head, expand)
        served = model.encode_queries(["a red flower", "big dog"]).toarray()
        assert np.allclose(queries.numpy(), served)
