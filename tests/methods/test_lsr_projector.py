"""The projector's pretraining: it learns to put a text's heaviest weight on the text's own content words."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast

from mmr.methods.lsr.head import SparseHead, Vocabulary
from mmr.methods.lsr.projector import (
    content_terms,
    own_word_first,
    pretrain_projector,
    projection_targets,
    reconstruction_loss,
)
from mmr.methods.lsr.tables import TeacherTables

WORDS = ["a", "red", "blue", "flower", "cat", "dog", "house", "tree", "big", "small", "##s", ".", "the"]


@pytest.fixture(scope="module")
def vocabulary():
    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", *WORDS]
    return Vocabulary(BertTokenizerFast(vocab={name: i for i, name in enumerate(names)}))


def _tables(vocabulary, texts, glosses, images_of):
    """Teacher vectors: a text's is the sum of fixed random vectors of its words; an image's is its caption's."""
    rng = np.random.default_rng(0)
    word_vectors = {w: rng.normal(size=16).astype(np.float32) for w in WORDS}

    def vector(text):
        return sum(word_vectors[w] for w in text.split())

    queries = torch.from_numpy(np.stack([vector(t) for t in texts]))
    images = [vector(texts[q]) for q in images_of]
    documents = torch.from_numpy(np.stack(images + [vector(g) for g in glosses]))
    return TeacherTables(
        queries=queries,
        query_terms=vocabulary.own_terms(texts),
        documents=documents,
        document_terms=[None] * len(images) + vocabulary.own_terms(glosses),
        query_row=np.arange(len(images_of)),
        document_row=np.arange(len(images_of)),
        images=len(images),
    )


def test_content_terms_leave_out_stop_words_and_punctuation(vocabulary):
    terms = vocabulary.own_terms(["the red flowers ."])[0]
    names = vocabulary.terms(content_terms(vocabulary, terms))
    assert sorted(names) == ["##s", "flower", "red"]


def test_images_learn_the_words_of_the_queries_paired_with_them(vocabulary):
    texts = ["a red flower", "the big dog", "blue house"]
    tables = _tables(vocabulary, texts, ["small cat ."], images_of=[0, 1])
    vectors, targets = projection_targets(tables, vocabulary)
    named = [sorted(vocabulary.terms(t)) for t in targets]
    # 3 queries, 2 images (their captions' content words), 1 gloss
    assert named == [
        ["flower", "red"],
        ["big", "dog"],
        ["blue", "house"],
        ["flower", "red"],
        ["big", "dog"],
        ["cat", "small"],
    ]
    assert len(vectors) == 6 and torch.equal(vectors[3], tables.documents[0])


def test_pretraining_puts_the_heaviest_weight_on_own_words(vocabulary):
    texts = ["red flower", "big dog", "blue house", "small cat", "red house", "big tree", "blue flower", "small dog"]
    tables = _tables(vocabulary, texts, ["red tree"], images_of=[])
    torch.manual_seed(0)
    head = SparseHead(16, torch.randn(vocabulary.size, 8), vocabulary.usable)
    vectors, targets = projection_targets(tables, vocabulary)
    allowed = vocabulary.mask(targets)
    before_loss = float(reconstruction_loss(head, vectors, allowed))
    before = own_word_first(head, tables.queries, tables.query_terms)
    losses = pretrain_projector(head, vectors, targets, vocabulary, 60, 4, 1e-2, np.random.default_rng(0))
    assert losses[-1] < losses[0] and float(reconstruction_loss(head, vectors, allowed)) < before_loss
    assert own_word_first(head, tables.queries, tables.query_terms) == 1.0 > before
