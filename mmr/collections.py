"""Named collections the app searches and the benchmark evaluates: which corpora they join.

``stamps`` is the default (images only); ``mixed`` adds WordNet glosses as text documents.
"""

from __future__ import annotations

from mmr.config import BUILD_COMMAND, Settings
from mmr.corpus.format import Corpus

COLLECTIONS: dict[str, tuple[str, ...]] = {
    "stamps": ("stamps",),
    "mixed": ("stamps", "wordnet"),
}

# Which benchmark setting evaluates each collection.
SETTING_OF_COLLECTION = {"stamps": "images", "mixed": "mixed"}


class MissingCorpusError(FileNotFoundError):
    pass


def load_collection(settings: Settings, name: str) -> Corpus:
    if name not in COLLECTIONS:
        raise KeyError(f"collection {name!r} not found. Available: {sorted(COLLECTIONS)}")
    parts = []
    for corpus_name in COLLECTIONS[name]:
        path = settings.corpora_dir / f"{corpus_name}.jsonl"
        if not path.exists():
            raise MissingCorpusError(f"corpus file {path} is missing; build it with `{BUILD_COMMAND}`")
        parts.append(Corpus.from_jsonl(path, corpus_name))
    return Corpus.concat(name, parts)
