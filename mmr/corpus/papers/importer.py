"""``import_corpus``: one paper's corpus converted into collections that ``mmr evaluate`` scores as the paper did.

What it writes, for NAME and each collection it makes (NAME, and NAME-captions for the caption datasets):

    index_store/corpora/<collection>.jsonl                          the documents
    index_store/media/<NAME>/                                       images shipped inside the corpus files
    index_store/benchmark/imported/<NAME>/v1/<setting>/<split>.queries.tsv and .qrels
    index_store/collections.json                                    the collection, its benchmark and metrics
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmr.collections import CollectionBenchmark, check_collection_name, register_collection
from mmr.config import Settings
from mmr.corpus.papers import paper_format
from mmr.corpus.papers.sink import ConvertOptions, PaperSink, PartCounts
from mmr.corpus.splits import SPLITS, SPLITS_VERSION

IMPORTED = "imported"


@dataclass(frozen=True)
class ImportedCollection:
    name: str
    benchmark: CollectionBenchmark
    counts: PartCounts

    def summary(self) -> str:
        queries = ", ".join(f"{n} {split}" for split, n in sorted(self.counts.queries.items()))
        line = f"{self.name}: {self.counts.documents} documents; {self.benchmark.setting} queries: {queries or 'none'}"
        if self.counts.left_out:
            line += f"; {self.counts.left_out} documents left out (unreadable images)"
        if self.counts.without_relevant:
            line += f"; {self.counts.without_relevant} queries left out (nothing relevant)"
        if self.counts.dangling:
            line += f"; {self.counts.dangling} judgements name documents missing from the corpus"
        return line


def imported_benchmark_folder(settings: Settings, name: str) -> Path:
    return settings.benchmark_dir / IMPORTED / name


def import_corpus(
    settings: Settings,
    format_name: str,
    source: Path,
    name: str,
    images_root: Path | None = None,
    splits: tuple[str, ...] | None = None,
) -> list[ImportedCollection]:
    """Convert ``source`` (a file or folder in the format's public layout) and register its collections."""
    paper = paper_format(format_name)
    splits = tuple(splits or paper.default_splits)
    if unknown := set(splits) - set(SPLITS):
        raise ValueError(f"unknown split(s) {sorted(unknown)}. Available: {list(SPLITS)}")
    for part in paper.parts:
        check_collection_name(name + part.suffix)
    if not Path(source).exists():
        raise FileNotFoundError(f"{source} does not exist")
    folder = imported_benchmark_folder(settings, name)
    options = ConvertOptions(format_name, splits, settings.media_dir / name, images_root)
    with PaperSink(settings.corpora_dir, name, paper.parts, folder / SPLITS_VERSION) as sink:
        paper.convert_function()(Path(source), sink, options)
    imported = []
    for part in paper.parts:
        benchmark = CollectionBenchmark(folder, part.setting, paper.metrics, part.query_modality)
        register_collection(settings, name + part.suffix, benchmark)
        imported.append(ImportedCollection(name + part.suffix, benchmark, sink.counts[part.suffix]))
    return imported
