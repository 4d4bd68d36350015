"""Named collections the app searches and the benchmark evaluates: which corpora they join.

``stamps`` is the default (images only); ``mixed`` adds WordNet glosses as text documents. Users add
their own with ``python -m mmr add-collection NAME corpus.jsonl``, which records it in
``index_store/collections.json``: a registry kept as data, next to the indexes built from it. A collection
imported from a paper's corpus (``python -m mmr import-corpus``) also records where its benchmark is and
which metrics the paper reports, so that ``mmr evaluate`` scores it as the paper did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mmr.config import BUILD_COMMAND, Settings
from mmr.corpus.format import Corpus, read_documents, write_documents
from mmr.corpus.splits import SETTINGS, SPLITS_VERSION, Benchmark, load_benchmark

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


@dataclass(frozen=True)
class CollectionBenchmark:
    """Where a collection's queries and qrels are and how to score them. ``folder`` holds
    ``<version>/<setting>/<split>.queries.tsv`` and ``.qrels``; a query of an ``image`` setting is the path
    of its image (relative to its queries file); ``metrics`` are ranx names, empty for the default table."""

    folder: Path
    setting: str
    metrics: tuple[str, ...] = ()
    query_modality: str = "text"

    @property
    def queries_folder(self) -> Path:
        return self.folder / SPLITS_VERSION / self.setting

    def load(self, split: str) -> Benchmark:
        known = SETTINGS if self.setting in SETTINGS else (self.setting,)
        return load_benchmark(self.folder, self.setting, split, known_settings=known)


def _user_registry(settings: Settings) -> dict[str, list[str] | dict]:
    """name -> its corpora (a list), or {"corpora": [...], "benchmark": {...}} for an imported collection."""
    registry = settings.index_store / USER_REGISTRY
    return json.loads(registry.read_text()) if registry.exists() else {}


def _corpora_of(entry: list[str] | dict) -> tuple[str, ...]:
    return tuple(entry["corpora"] if isinstance(entry, dict) else entry)


def collections(settings: Settings) -> dict[str, tuple[str, ...]]:
    user = _user_registry(settings)
    return {**DEFAULT_COLLECTIONS, **{name: _corpora_of(entry) for name, entry in user.items()}}


def benchmark_of(settings: Settings, name: str) -> CollectionBenchmark | None:
    """The benchmark that evaluates collection ``name``, or None if it has none (a plain user collection)."""
    if name in SETTING_OF_COLLECTION:
        return CollectionBenchmark(settings.benchmark_dir, SETTING_OF_COLLECTION[name])
    entry = _user_registry(settings).get(name)
    if not isinstance(entry, dict) or "benchmark" not in entry:
        return None
    recorded = entry["benchmark"]
    return CollectionBenchmark(
        settings.index_store / recorded["folder"],  # relative, so that the store can move
        recorded["setting"],
        tuple(recorded.get("metrics", ())),
        recorded.get("query_modality", "text"),
    )


def check_collection_name(name: str) -> None:
    if name in RESERVED_NAMES:
        raise ValueError(f"{name!r} is a built-in name; choose another")


def register_collection(settings: Settings, name: str, benchmark: CollectionBenchmark | None = None) -> None:
    """Record ``name`` (its corpus is ``corpora/<name>.jsonl``), with the benchmark that evaluates it if any."""
    check_collection_name(name)
    entry: list[str] | dict = [name]
    if benchmark is not None:
        recorded = asdict(benchmark)
        recorded["folder"] = str(Path(benchmark.folder).relative_to(settings.index_store))
        recorded["metrics"] = list(benchmark.metrics)
        entry = {"corpora": [name], "benchmark": recorded}
    user = _user_registry(settings)
    user[name] = entry
    settings.index_store.mkdir(parents=True, exist_ok=True)
    (settings.index_store / USER_REGISTRY).write_text(json.dumps(user, indent=2))


def add_collection(settings: Settings, name: str, corpus_file: Path) -> Corpus:
    """Validate a user's JSONL corpus, copy it under index_store/corpora and register it."""
    check_collection_name(name)
    corpus_file = Path(corpus_file).resolve()
    documents = list(read_documents(corpus_file))  # raises CorpusFormatError naming file and line
    missing = [d.image_path for d in documents if d.image_path and not Path(d.image_path).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image files are missing, e.g. {missing[:3]}")
    # Rewritten rather than copied: image paths relative to the original file must still resolve.
    write_documents(documents, settings.corpora_dir / f"{name}.jsonl")
    register_collection(settings, name)
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
