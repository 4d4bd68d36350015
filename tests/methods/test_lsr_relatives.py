"""Lexical grounding with WordNet relatives: pointer parsing, the word -> relatives map, and the sparse
report's own-or-related shares on hand-built query vectors."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from mmr.config import SourcePaths
from mmr.corpus.format import Corpus
from mmr.corpus.wordnet import Synset, parse_data_line
from mmr.index import IndexParams
from mmr.methods.lsr.head import Vocabulary
from mmr.methods.lsr.index import SparseIndex
from mmr.methods.lsr.relatives import (
    load_noun_relatives,
    noun_relatives,
    own_or_related_terms,
    query_words,
    relatives_of,
)
from mmr.methods.lsr.report import report_markdown, sparse_report
from mmr.types import Document

# dog: hypernym canine, hyponym puppy; the "@ ... v" pointer has a hypernym symbol but points at a verb.
DOG_LINE = (
    "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 003 @ 02083346 n 0000 "
    "~ 01322604 n 0000 @ 01208400 v 0101 | a member of the genus Canis; "
    '"the dog barked all night"  '
)
# Only dog records its pointers: canine and puppy must still find dog.
CANINE = Synset(2083346, 5, ("canine", "canid"), "a carnivore", ())
PUPPY = Synset(1322604, 5, ("puppy",), "a young dog", ())
CAT = Synset(2121620, 5, ("cat", "true cat"), "a feline mammal", ())

WORDS = ["a", "big", "red", "dog", "canine", "canid", "puppy", "##puppy", "cat", "animal"]


@pytest.fixture(scope="module")
def vocabulary():
    from transformers import BertTokenizerFast

    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", *WORDS]
    return Vocabulary(BertTokenizerFast(vocab={name: i for i, name in enumerate(names)}))


@pytest.fixture(scope="module")
def relatives():
    return noun_relatives([parse_data_line(DOG_LINE), CANINE, PUPPY, CAT])


def _id(vocabulary, name):
    return vocabulary.tokenizer.convert_tokens_to_ids(name)


def _vector(vocabulary, weights: dict[str, float]):
    ids = [_id(vocabulary, name) for name in weights]
    return sp.csr_matrix((list(weights.values()), ([0] * len(ids), ids)), shape=(1, vocabulary.size))


def test_data_line_keeps_noun_hypernym_and_hyponym_pointers_only():
    dog = parse_data_line(DOG_LINE)
    assert dog.hypernyms == (2083346,) and dog.hyponyms == (1322604,)
    assert dog.lemmas == ("dog", "domestic dog", "Canis familiaris")
    assert dog.definition == "a member of the genus Canis" and dog.examples == ("the dog barked all night",)
    instances = parse_data_line("09000001 15 n 01 Paris 0 002 @i 08000001 n 0000 ~i 07000001 n 0000 | a city")
    assert instances.hypernyms == (8000001,) and instances.hyponyms == (7000001,)
    # a pointer list cut short keeps the synset, with no pointers
    cut = parse_data_line("09000002 15 n 01 town 0 002 @ 08000001 n 0000 ~ 0700 | a small city")
    assert cut.lemmas == ("town",) and cut.hypernyms == () and cut.hyponyms == ()
    assert Synset(1, 5, ("x",), "d", ()).hypernyms == ()  # the old constructor still works


def test_relatives_are_synonyms_and_direct_hypernyms_and_hyponyms_both_ways(relatives):
    assert relatives["dog"] == {"dog", "canine", "canid", "puppy"}  # multi-word lemmas left out
    assert relatives["canine"] == {"canine", "canid", "dog"}  # two steps from puppy: not a relative
    assert relatives["canid"] == relatives["canine"]
    assert relatives["puppy"] == {"puppy", "dog"}
    assert relatives["cat"] == {"cat"}
    assert "domestic dog" not in relatives and "domestic" not in relatives and "canis" not in relatives


def test_relatives_are_read_once_per_dictionary(tmp_path):
    (tmp_path / "data.noun").write_text("  1 licence header  \n" + DOG_LINE + "\n")
    first = load_noun_relatives(tmp_path)
    assert first["dog"] == {"dog"}  # canine and puppy are not in this file
    assert load_noun_relatives(tmp_path) is first


def test_own_or_related_terms_add_whole_word_relatives(vocabulary, relatives):
    assert query_words("A big-Dog, 2 cats!") == ["a", "big", "dog", "cats"]
    (terms,) = own_or_related_terms(vocabulary, ["big dog"], relatives)
    # "##puppy" is the tail of a word, not the word "puppy": it is not a relative
    assert terms.tolist() == sorted(_id(vocabulary, name) for name in ["big", "dog", "canine", "canid", "puppy"])
    assert (
        own_or_related_terms(vocabulary, ["big dog"], {})[0].tolist() == vocabulary.own_terms(["big dog"])[0].tolist()
    )
    # an inflected noun is looked up by its base form, as WordNet's morphy does; "dogma" is no inflection
    assert relatives_of("dogs", relatives) == relatives["dog"]
    assert relatives_of("puppies", relatives) == {"puppy", "dog"}
    assert relatives_of("dogma", relatives) == frozenset()


class StubRetriever:
    """What ``sparse_report`` reads from an ``LSRRetriever``, with query vectors given by hand."""

    def __init__(self, vocabulary, vectors, resources=None):
        forward = sp.vstack([_vector(vocabulary, {"dog": 1.0}), _vector(vocabulary, {"cat": 1.0})], format="csr")
        self.index = SparseIndex(forward, ["d0", "d1"], IndexParams("lsr", "x", vocabulary.size, "c", "f"))
        self.model = SimpleNamespace(vocabulary=vocabulary, config=SimpleNamespace(in_dim=8))
        self.vectors = vectors
        if resources is not None:
            self.resources = resources

    def encode_text_queries(self, texts):
        assert len(texts) == len(self.vectors)
        return self.vectors

    def search_vector(self, vector, k):
        return self.index.search(vector, k)


CORPUS = Corpus("c", (Document("d0", "text", "dog"), Document("d1", "text", "cat")))
QUERIES = {"q1": "big dog", "q2": "a dog", "q3": "red cat", "q4": "dog"}


def _vectors(vocabulary):
    return [
        _vector(vocabulary, {"canine": 3.0, "big": 2.0, "cat": 1.0}),  # heaviest: a relative
        _vector(vocabulary, {"cat": 3.0, "##puppy": 2.0, "puppy": 1.5, "dog": 1.0}),  # heaviest: unrelated
        _vector(vocabulary, {"red": 2.0, "animal": 1.0}),  # heaviest: own; "animal" is no relative of "cat"
        sp.csr_matrix((1, vocabulary.size), dtype=np.float32),  # empty: not counted
    ]


def test_report_counts_a_related_heaviest_term_and_not_an_unrelated_one(vocabulary, relatives):
    report = sparse_report(StubRetriever(vocabulary, _vectors(vocabulary)), CORPUS, QUERIES, relatives=relatives)
    assert report["heaviest_term_is_own_token"] == pytest.approx(1 / 3)  # q3 only
    assert report["heaviest_term_is_own_or_related"] == pytest.approx(2 / 3)  # q1 and q3
    assert report["top10_terms_own_share"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 2) / 3)
    assert report["top10_terms_own_or_related_share"] == pytest.approx((2 / 3 + 2 / 4 + 1 / 2) / 3)
    assert report["first_own_token_rank_median"] == pytest.approx(2.0)  # ranks 2, 4 and 1
    table = report_markdown(report, None, "marvel", None)
    assert "| query's heaviest term is one of its own tokens (share of queries) | 0.33 |" in table
    assert (
        "| query's heaviest term is its own token or a WordNet relative of its words (share of queries) | 0.67 |"
    ) in table
    assert "| query's 10 heaviest terms that are its own tokens or WordNet relatives (mean share) | 0.56 |" in table


def test_report_reads_relatives_from_the_settings_wordnet_or_leaves_them_blank(vocabulary, tmp_path):
    vectors = _vectors(vocabulary)
    blank = sparse_report(StubRetriever(vocabulary, vectors), CORPUS, QUERIES)
    assert blank["heaviest_term_is_own_or_related"] is None and blank["top10_terms_own_or_related_share"] is None
    assert "| no WordNet data |" in report_markdown(blank, None, "marvel", None)

    (tmp_path / "data.noun").write_text(
        "\n".join([DOG_LINE, "02083346 05 n 01 canine 0 001 ~ 02084071 n 0000 | a carnivore  "]) + "\n"
    )
    settings = SimpleNamespace(sources=SourcePaths(wordnet_dict=tmp_path))
    loaded = sparse_report(StubRetriever(vocabulary, vectors, SimpleNamespace(settings=settings)), CORPUS, QUERIES)
    assert loaded["heaviest_term_is_own_or_related"] == pytest.approx(2 / 3)  # canine, for "big dog"
    # puppy is not in this dictionary: q2 keeps only its own "dog"
    assert loaded["top10_terms_own_or_related_share"] == pytest.approx((2 / 3 + 1 / 4 + 1 / 2) / 3)

    missing = SimpleNamespace(settings=SimpleNamespace(sources=SourcePaths(wordnet_dict=tmp_path / "none")))
    without = sparse_report(StubRetriever(vocabulary, vectors, missing), CORPUS, QUERIES)
    assert without["heaviest_term_is_own_or_related"] is None
    assert without["top10_terms_own_share"] == blank["top10_terms_own_share"]
