"""Fixed, versioned benchmark splits over the stamps and WordNet corpora.

Splits are made per *group*, never per item: 950 stamps carry only ~804 distinct descriptions
("A flower." is on 6 stamps), and a description seen in training makes its test query a lookup.
A group's split comes from sha256(seed, group), so it does not depend on input order or on
Python's per-process ``hash()``, and a rebuild on another machine gives the same files.

Layout written by ``build_benchmark(stamps, wordnet, out_dir)``::

    out_dir/v1/manifest.json            version, seed, fractions, counts
    out_dir/v1/splits.json              doc id -> "train" | "dev" | "test"
    out_dir/v1/<setting>/<split>.queries.tsv   qid <TAB> query text
    out_dir/v1/<setting>/<split>.qrels         TREC qrels: qid 0 docid grade

Settings: ``images`` (stamp description -> every stamp with that description) and ``mixed``
(those queries plus WordNet lemma -> every selected synset having that lemma).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mmr.types import Document

SPLITS_VERSION = "v1"
SPLITS = ("train", "dev", "test")
SETTINGS = ("images", "mixed")
DEFAULT_FRACTIONS = (0.5, 0.15, 0.35)
DEFAULT_SEED = 13
MIN_LEMMA_QUERY_CHARS = 3

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalise_description(text: str) -> str:
    """'A  Flower.' -> 'a flower': the key that decides which stamps answer the same query."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def _group_rank(group: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x00{group}".encode()).hexdigest()


def split_by_item(
    keys: list[str],
    group_of: Callable[[str], str],
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = DEFAULT_SEED,
) -> dict[str, str]:
    """Map each key to train/dev/test so that keys of one group share a split.

    Groups are ordered by their seeded hash and cut where the running share of *items* crosses
    the fractions, so item fractions come out close to the target even for small inputs.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    members: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        members[group_of(key)].append(key)
    total = sum(fractions)
    bounds = [sum(fractions[: i + 1]) / total for i in range(len(SPLITS))]
    n_items, done = len(keys), 0
    assignment: dict[str, str] = {}
    for group in sorted(members, key=lambda g: _group_rank(g, seed)):
        size = len(members[group])
        middle = (done + size / 2) / n_items  # where the group sits on the 0..1 line
        split = next((s for s, b in zip(SPLITS, bounds) if middle < b), SPLITS[-1])
        for key in members[group]:
            assignment[key] = split
        done += size
    return assignment


# ------------------------------------------------------------------------------------ queries


@dataclass(frozen=True)
class _QuerySet:
    """Queries of one source over all splits: key -> (text, relevant doc ids, split)."""

    prefix: str
    entries: dict[str, tuple[str, tuple[str, ...], str]]

    def qids(self) -> dict[str, str]:
        return {key: f"{self.prefix}-{i:06d}" for i, key in enumerate(sorted(self.entries))}


def _image_queries(stamps: list[Document], splits: dict[str, str]) -> _QuerySet:
    by_description: dict[str, list[Document]] = defaultdict(list)
    for doc in sorted(stamps, key=lambda d: d.id):
        by_description[normalise_description(doc.text)].append(doc)
    entries = {}
    for key, docs in by_description.items():
        if key:
            text = " ".join(docs[0].text.split())
            entries[key] = (text, tuple(d.id for d in docs), splits[docs[0].id])
    return _QuerySet("img", entries)


def _lemmas(doc: Document) -> list[str]:
    return [lemma.strip() for lemma in doc.metadata.get("lemmas", "").split(",") if lemma.strip()]


def _query_lemma(doc: Document) -> str | None:
    lemmas = _lemmas(doc)
    return lemmas[0] if lemmas and len(lemmas[0]) >= MIN_LEMMA_QUERY_CHARS else None


def _docs_by_lemma(wordnet: list[Document]) -> dict[str, list[str]]:
    having: dict[str, list[str]] = defaultdict(list)
    for doc in sorted(wordnet, key=lambda d: d.id):
        for lemma in dict.fromkeys(lemma.lower() for lemma in _lemmas(doc)):
            having[lemma].append(doc.id)
    return having


def _wordnet_groups(wordnet: list[Document]) -> dict[str, str]:
    """Doc id -> group id. A lemma query and every synset it should find must share a split, so
    the synsets relevant to one query are joined (union-find). Only query lemmas join: joining on
    every lemma chains polysemous words into one group holding a sixth of the corpus."""
    parent = {doc.id: doc.id for doc in wordnet}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    having = _docs_by_lemma(wordnet)
    for doc in wordnet:
        query = _query_lemma(doc)
        for other in having[query.lower()] if query else ():
            root_a, root_b = find(doc.id), find(other)
            if root_a != root_b:
                parent[max(root_a, root_b)] = min(root_a, root_b)
    return {doc_id: find(doc_id) for doc_id in parent}


def _wordnet_queries(wordnet: list[Document], splits: dict[str, str]) -> _QuerySet:
    having = _docs_by_lemma(wordnet)
    entries = {}
    for doc in sorted(wordnet, key=lambda d: d.id):
        query = _query_lemma(doc)
        if query and query.lower() not in entries:
            entries[query.lower()] = (query, tuple(having[query.lower()]), splits[doc.id])
    return _QuerySet("wn", entries)


# ------------------------------------------------------------------------------------ writing


def _write_setting(folder: Path, query_sets: Iterable[_QuerySet]) -> dict[str, dict[str, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    query_sets = list(query_sets)
    counts = {}
    for split in SPLITS:
        query_lines, qrel_lines = [], []
        for query_set in query_sets:
            qids = query_set.qids()
            for key in sorted(query_set.entries, key=lambda k: qids[k]):
                text, relevant, key_split = query_set.entries[key]
                if key_split != split:
                    continue
                query_lines.append(f"{qids[key]}\t{text}\n")
                qrel_lines.extend(f"{qids[key]} 0 {doc_id} 1\n" for doc_id in relevant)
        (folder / f"{split}.queries.tsv").write_text("".join(query_lines), encoding="utf-8")
        (folder / f"{split}.qrels").write_text("".join(qrel_lines), encoding="utf-8")
        counts[split] = {"queries": len(query_lines), "qrels": len(qrel_lines)}
    return counts


def _count_docs(splits: dict[str, str], ids: Iterable[str]) -> dict[str, int]:
    chosen = [splits[doc_id] for doc_id in ids]
    return {split: chosen.count(split) for split in SPLITS}


def build_benchmark(
    stamps: list[Document],
    wordnet: list[Document],
    out_dir: Path,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = DEFAULT_SEED,
) -> None:
    """Write the ``SPLITS_VERSION`` benchmark under ``out_dir/<SPLITS_VERSION>/``."""
    root = Path(out_dir) / SPLITS_VERSION
    descriptions = {doc.id: normalise_description(doc.text) for doc in stamps}
    splits = split_by_item(list(descriptions), descriptions.__getitem__, fractions, seed)
    components = _wordnet_groups(wordnet)
    splits.update(split_by_item(list(components), lambda d: f"wn:{components[d]}", fractions, seed))

    images, lemmas = _image_queries(stamps, splits), _wordnet_queries(wordnet, splits)
    counts = {
        "images": _write_setting(root / "images", [images]),
        "mixed": _write_setting(root / "mixed", [images, lemmas]),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "splits.json").write_text(json.dumps(dict(sorted(splits.items())), indent=0) + "\n")
    manifest = {
        "version": SPLITS_VERSION,
        "seed": seed,
        "fractions": dict(zip(SPLITS, fractions)),
        "documents": {
            "stamps": _count_docs(splits, descriptions),
            "wordnet": _count_docs(splits, components),
        },
        "queries": counts,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# ------------------------------------------------------------------------------------ reading


def read_queries(path: Path) -> dict[str, str]:
    queries = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, _, text = line.partition("\t")
            queries[qid] = text
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, _, doc_id, grade = line.split()
            qrels[qid][doc_id] = int(grade)
    return dict(qrels)


@dataclass(frozen=True)
class Benchmark:
    setting: str
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_benchmark(
    out_dir: Path, setting: str, split: str, version: str = SPLITS_VERSION, known_settings: Iterable[str] = SETTINGS
) -> Benchmark:
    """One split of one setting; ``known_settings`` are those of ``out_dir`` (an imported corpus has its own)."""
    known_settings = tuple(known_settings)
    if setting not in known_settings:
        raise ValueError(f"unknown setting {setting!r}. Available: {list(known_settings)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}. Available: {list(SPLITS)}")
    folder = Path(out_dir) / version / setting
    if not folder.is_dir():
        raise FileNotFoundError(f"no benchmark at {folder}; build it with `python -m mmr build`")
    return Benchmark(
        setting, split, read_queries(folder / f"{split}.queries.tsv"), read_qrels(folder / f"{split}.qrels")
    )
