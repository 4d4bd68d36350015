"""Named collections the app searches and the benchmark evaluates: which corpora they join.

``stamps`` is the default (images only); ``mixed`` adds WordNet glosses as text documents. Users add
their own with ``python -m mmr add-collection NAME corpus.jsonl``, which records it in
``index_store/collections.json``: a registry kept as data, next to the indexes built from it.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmr.config import BUILD_COMMAND, Settings
from mmr.corpus.format import Corpus, read_documents, write_documents

DEFAULT_COLLECTIONS: dict[str, tuple[str, ...]] = {
    "stamps": ("stamps",),
    "mixed": ("stamps", "wordnet"),
}
RESERVED_NAMES = {*DEFAULT_COLLECTIONS, "wordnet", "openclipart"}

# Which benchmark setting evaluates each collection; user collections have none.
SETTING_OF_COLLECTION = {"stamps": "images", "mixed": "mixed"}
USER_REGISTRY = "collections.json"


class MissingCorpusError(FileNotFoundError):
    pass


def _user_registry(settings: Settings) -> dict[str, list[str]]:
    registry = settings.index_store / USER_REGISTRY
    return json.loads(registry.read_text()) if registry.exists() else {}


def collections(settings: Settings) -> dict[str, tuple[str, ...]]:
    user = _user_registry(settings)
    return {**DEFAULT_COLLECTIONS, **{name: tuple(parts) for name, parts in user.items()}}


def add_collection(settings: Settings, name: str, corpus_file: Path) -> Corpus:
    """Validate a user's JSONL corpus, copy it under index_store/corpora and register it."""
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is a built-in name; choose another")
    corpus_file = Path(corpus_file).resolve()
    documents = list(read_documents(corpus_file))  # raises CorpusFormatError naming file and line
    missing = [d.image_path for d in documents if d.image_path and not Path(d.image_path).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image files are missing, e.g. {missing[:3]}")
    # Rewritten rather than copied: image paths relative to the original file must still resolve.
    write_documents(documents, settings.corpora_dir / f"{name}.jsonl")
    user = _user_registry(settings)
    user[name] = [name]
    (settings.index_store / USER_REGISTRY).write_text(json.dumps(user, indent=2))
    return Corpus(name, tuple(documents))


def load_collection(settings: Settings, name: str) -> Corpus:
    known = collections(settings)
    if name not in known:
        raise KeyError(f"collection {name!r} not found. Available: {sorted(known)}")
    parts = []
    for corpus_name in known[name]:
        path = settings.corpora_dir / f"{corpus_name}.jsonl"
        if not path.exists():
            raise MissingCorpusError(f"corpus file {path} is missing; build it with `{BUILD_COMMAND}`")
        parts.append(Corpus.from_jsonl(path, corpus_name))
    return Corpus.concat(name, parts)
