"""WordNet 3.0 noun glosses (Debian ``wordnet-base``) as a text corpus, read without nltk.

A ``data.noun`` line is ``offset lex_filenum ss_type w_cnt(hex) word lex_id ... p_cnt pointers | gloss``
and a gloss is ``definition; "example"; "example"``. A document's text is the definition alone: the
benchmark asks for a synset by its lemma, so putting the lemmas in the text would make the task a
string match. Lines starting with two spaces are the licence header. A synset also keeps its noun
hypernym and hyponym pointers, so the sparse retriever's report can tell a related term from a stray one.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmr.types import Document

logger = logging.getLogger(__name__)

NOUN_DATA_FILE = "data.noun"
MIN_DEFINITION_WORDS = 4

# The fixed lexicographer file numbers of WordNet 3.0 (the ``lexnames`` file, absent from Debian).
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]

_QUOTED = re.compile(r'"([^"]*)"')


@dataclass(frozen=True)
class Synset:
    offset: int
    lex_filenum: int
    lemmas: tuple[str, ...]  # underscores turned into spaces, original case
    definition: str
    examples: tuple[str, ...]
    # Offsets of noun synsets one hypernym / hyponym pointer away (instance pointers included).
    hypernyms: tuple[int, ...] = ()
    hyponyms: tuple[int, ...] = ()

    @property
    def lexname(self) -> str:
        return LEXNAMES[self.lex_filenum] if 0 <= self.lex_filenum < len(LEXNAMES) else ""

    @property
    def doc_id(self) -> str:
        return f"wn/{self.offset:08d}-n"


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """``'a dog; "the dog barked"'`` -> ``('a dog', ('the dog barked',))``."""
    examples = tuple(ex.strip() for ex in _QUOTED.findall(gloss) if ex.strip())
    # Quotes go first: examples contain semicolons of their own.
    parts = [part.strip() for part in _QUOTED.sub("", gloss).split(";")]
    # What is left of an example's attribution ('"..."- Henry Miller') starts with a dash.
    parts = [part for part in parts if part and not part.startswith("-")]
    return "; ".join(parts), examples


HYPERNYM_POINTERS = {"@", "@i"}
HYPONYM_POINTERS = {"~", "~i"}


def parse_pointers(fields: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Noun hypernym and hyponym offsets from the ``p_cnt ptr...`` fields (``symbol offset pos source/target``).

    A malformed pointer list yields none rather than dropping the synset: its gloss and lemmas are what
    the corpus needs, the pointers only feed the lexical-grounding report.
    """
    try:
        count = int(fields[0])
        pointers = [fields[1 + 4 * i : 5 + 4 * i] for i in range(count)]
        parsed = [(symbol, int(offset), pos) for symbol, offset, pos, _ in pointers]
    except (IndexError, ValueError):
        return (), ()
    hypernyms = tuple(offset for symbol, offset, pos in parsed if symbol in HYPERNYM_POINTERS and pos == "n")
    hyponyms = tuple(offset for symbol, offset, pos in parsed if symbol in HYPONYM_POINTERS and pos == "n")
    return hypernyms, hyponyms


def parse_data_line(line: str) -> Synset | None:
    """One synset from a ``data.*`` line, or None for header and malformed lines."""
    if not line or line.startswith("  "):
        return None
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    try:
        offset, lex_filenum, word_count = int(fields[0]), int(fields[1]), int(fields[3], 16)
        words = fields[4 : 4 + 2 * word_count : 2]
    except (IndexError, ValueError):
        return None
    if len(words) != word_count:
        return None
    definition, examples = split_gloss(gloss.strip())
    lemmas = tuple(word.replace("_", " ") for word in words)
    hypernyms, hyponyms = parse_pointers(fields[4 + 2 * word_count :])
    return Synset(offset, lex_filenum, lemmas, definition, examples, hypernyms, hyponyms)


def find_noun_data(dict_dir: Path) -> Path:
    """The noun data file; Debian names it ``data.noun``, the Windows build ``noun.dat``."""
    for name in (NOUN_DATA_FILE, "noun.dat"):
        candidate = Path(dict_dir) / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no WordNet noun data ({NOUN_DATA_FILE}) in {dict_dir}; install the Debian package wordnet-base"
    )


def read_noun_synsets(dict_dir: Path) -> list[Synset]:
    synsets = []
    with find_noun_data(dict_dir).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            synset = parse_data_line(line.rstrip("\n"))
            if synset is not None:
                synsets.append(synset)
    logger.info("read %d noun synsets from %s", len(synsets), dict_dir)
    return synsets


def read_lemma_vocabulary(dict_dir: Path) -> set[str]:
    """Every lemma of every part of speech, lowercased with spaces: an English word list."""
    vocabulary: set[str] = set()
    for pos in ("noun", "verb", "adj", "adv"):
        path = Path(dict_dir) / f"index.{pos}"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line and not line.startswith("  "):
                    vocabulary.add(line.split(" ", 1)[0].replace("_", " ").lower())
    return vocabulary


def synset_document(synset: Synset) -> Document:
    return Document(
        id=synset.doc_id,
        modality="text",
        text=synset.definition,
        metadata={
            "source": "wordnet",
            "lemmas": ", ".join(synset.lemmas),
            "lexname": synset.lexname,
            "category": synset.lexname.partition(".")[2],
        },
    )


def select_synsets(synsets: list[Synset], size: int, seed: int = 0, prefer_words: Iterable[str] = ()) -> list[Synset]:
    """Deterministic subset: synsets named by a preferred word first, then a seeded sample."""
    prefer = {" ".join(word.lower().split()) for word in prefer_words}
    prefer.discard("")
    usable = sorted(
        (s for s in synsets if len(s.definition.split()) >= MIN_DEFINITION_WORDS),
        key=lambda s: s.offset,
    )
    preferred = [s for s in usable if any(lemma.lower() in prefer for lemma in s.lemmas)]
    rest = [s for s in usable if not any(lemma.lower() in prefer for lemma in s.lemmas)]
    rng = random.Random(seed)
    if len(preferred) >= size:
        chosen = rng.sample(preferred, size)
    else:
        chosen = preferred + rng.sample(rest, min(size - len(preferred), len(rest)))
    logger.info("wordnet subset: %d preferred of %d chosen", min(len(preferred), size), len(chosen))
    return sorted(chosen, key=lambda s: s.offset)


def build_wordnet_corpus(
    dict_dir: Path, size: int = 5000, seed: int = 0, prefer_words: Iterable[str] = ()
) -> list[Document]:
    """Text documents for ``size`` noun synsets with definitions of at least 4 words."""
    chosen = select_synsets(read_noun_synsets(dict_dir), size, seed, prefer_words)
    return [synset_document(s) for s in chosen]
