"""Sparse terms as a person reads them: whole words, never WordPiece pieces, punctuation or stop words.

A sparse vector weighs WordPiece terms, and most of what a head puts weight on is not a word a reader
can check: "##gno", ",", "a". The view joins the pieces of each word of the text being explained
("da ##ff ##od ##ils" is "daffodils", weighted by the sum of its pieces' weights), keeps the other
terms that are words on their own, and sums the rest (pieces of no word of the text, punctuation,
digits, stop words) into one remainder, so a list never hides how much of a score it does not show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bm25s.stopwords import STOPWORDS_EN_PLUS

STOP_WORDS = frozenset(STOPWORDS_EN_PLUS)


@dataclass(frozen=True)
class Word:
    text: str
    term_ids: tuple[int, ...]  # the WordPiece terms it is made of


def is_readable(name: str) -> bool:
    """A term that is a word on its own: letters only, not a continuation piece, not a stop word."""
    return name.isalpha() and len(name) > 1 and name.lower() not in STOP_WORDS


def words_of(text: str, tokenizer) -> list[Word]:
    """The words of ``text`` that a reader would call words, each with its WordPiece term ids."""
    encoded = tokenizer(text or "", add_special_tokens=False, truncation=True, max_length=256)
    pieces: dict[int, list[int]] = {}
    for term, word in zip(encoded["input_ids"], encoded.word_ids(), strict=True):
        if word is not None:
            pieces.setdefault(word, []).append(int(term))
    words = []
    for ids in pieces.values():
        text_of = tokenizer.decode(ids).replace(" ", "")
        if text_of.isalpha() and text_of.lower() not in STOP_WORDS:
            words.append(Word(text_of, tuple(dict.fromkeys(ids))))
    return words


def readable_terms(
    values: Mapping[int, float], text: str | None, tokenizer, name_of: Callable[[int], str]
) -> tuple[list[tuple[str, tuple[int, ...]]], list[int]]:
    """Groups the term ids of ``values`` into words: those of ``text`` joined from their pieces, then
    single terms that are words; answers (word, its term ids) in no order, and the ids left over."""
    left = {term for term, value in values.items() if value}
    grouped: list[tuple[str, tuple[int, ...]]] = []
    seen: set[str] = set()
    for word in words_of(text or "", tokenizer):
        present = tuple(t for t in word.term_ids if t in left)
        key = word.text.lower()
        if present and key not in seen:
            seen.add(key)
            grouped.append((word.text, present))
            left.difference_update(present)
    for term in sorted(left):
        name = name_of(term)
        if is_readable(name) and name.lower() not in seen:
            seen.add(name.lower())
            grouped.append((name, (term,)))
    used = {t for _, ids in grouped for t in ids}
    return grouped, sorted(left - used)
