"""WordNet relatives of a query's words: the terms a query may weigh most without drifting from its meaning.

A sparse query that puts its heaviest weight on "canine" for "dog" has expanded, but not deviated:
a reader checking the term sees the link. Counting only the query's own WordPiece tokens calls that
deviation; counting the synonyms, direct hypernyms and direct hyponyms of its words (nouns only, as
the corpus holds noun synsets) does not.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmr.corpus.wordnet import Synset, read_noun_synsets

_WORD = re.compile(r"[^\W\d_]+")


def _single_words(synset: Synset) -> set[str]:
    # A multi-word lemma can never be one vocabulary term, and its parts alone ("domestic" of
    # "domestic dog") are not relatives of anything.
    return {lemma.lower() for lemma in synset.lemmas if " " not in lemma}


def noun_relatives(synsets: Iterable[Synset]) -> dict[str, frozenset[str]]:
    """word -> the single-word lemmas (lowercase, the word itself included) of every synset it is a lemma
    of and of those synsets' direct hypernyms and hyponyms."""
    by_offset = {synset.offset: synset for synset in synsets}
    # Both directions from either pointer: a data file that records only one side still links both words.
    neighbours: dict[int, set[int]] = defaultdict(set)
    for synset in by_offset.values():
        for other in (*synset.hypernyms, *synset.hyponyms):
            if other in by_offset:
                neighbours[synset.offset].add(other)
                neighbours[other].add(synset.offset)
    relatives: dict[str, set[str]] = defaultdict(set)
    for offset, synset in by_offset.items():
        words = _single_words(synset)
        if not words:
            continue
        related = set(words)
        for other in neighbours.get(offset, ()):
            related |= _single_words(by_offset[other])
        for word in words:
            relatives[word] |= related
    return {word: frozenset(related) for word, related in relatives.items()}


@lru_cache(maxsize=4)
def load_noun_relatives(dict_dir: Path) -> Mapping[str, frozenset[str]]:
    """``noun_relatives`` of the WordNet data in ``dict_dir``, read once per process (82k synsets)."""
    return noun_relatives(read_noun_synsets(Path(dict_dir)))


# WordNet's own detachment rules for nouns (morphy): "dogs" is looked up as "dog", "buses" as "bus".
_NOUN_ENDINGS = (
    ("ses", "s"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
    ("s", ""),
)


def query_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def relatives_of(word: str, relatives: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The word's relatives, or those of its base form when the word is an inflected noun."""
    if word in relatives:
        return relatives[word]
    for ending, base in _NOUN_ENDINGS:
        if word.endswith(ending) and word[: -len(ending)] + base in relatives:
            return relatives[word[: -len(ending)] + base]
    return frozenset()


def own_or_related_terms(vocabulary, texts: Sequence[str], relatives: Mapping[str, frozenset[str]]) -> list[np.ndarray]:
    """Sorted term ids of each text: its own tokens, and the whole-word vocabulary terms that are WordNet
    relatives of its words."""
    own = vocabulary.own_terms(list(texts))
    ids = vocabulary.tokenizer.get_vocab()
    result = []
    for text, terms in zip(texts, own):
        related = set().union(*(relatives_of(word, relatives) for word in query_words(text)))
        # "##" pieces are word endings: a relative is a whole word, never the tail of one.
        extra = [ids[name] for name in related if not name.startswith("##") and name in ids]
        result.append(np.union1d(terms, np.asarray(extra, dtype=np.int64)))
    return result
