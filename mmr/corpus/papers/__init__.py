"""The papers' public corpora, converted into this project's corpus, queries and qrels: a registry kept as data.

Each format names the module that reads it, the collections it makes (a paper that evaluates both directions,
text-to-image and image-to-text, searches a different gallery in each, so it makes two) and the metrics the
papers report on it, as ranx names. ``python -m mmr import-corpus FORMAT SOURCE NAME`` runs one.

The papers' R@K on MSCOCO and Flickr30k counts a query as answered when *any* relevant document is in the
top K, which is ranx's ``hit_rate@K`` (ranx's ``recall@K`` is the share of relevant documents found: the same
for one relevant image, not for an image's five captions).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mmr.corpus.splits import SPLITS
from mmr.types import Modality


@dataclass(frozen=True)
class CollectionPart:
    """One collection an import makes: ``NAME + suffix``, searched by the queries of ``setting``."""

    suffix: str
    setting: str
    query_modality: Modality


@dataclass(frozen=True)
class PaperFormat:
    converter: str  # "module:function(source, sink, options)"
    metrics: tuple[str, ...]
    parts: tuple[CollectionPart, ...]
    default_splits: tuple[str, ...]  # whose queries are written (and, for a gallery per split, whose documents)
    papers: str

    def convert_function(self):
        module_name, function = self.converter.split(":")
        return getattr(importlib.import_module(module_name), function)


_CAPTION_DIRECTIONS = (
    CollectionPart("", "text-to-image", "text"),
    CollectionPart("-captions", "image-to-text", "image"),
)
_CAPTION_METRICS = ("hit_rate@1", "hit_rate@5", "hit_rate@10")
# MARVEL's README reports MRR@10, NDCG@10 and Rec@100 on WebQA and ClueWeb22-MM; Recall@20 is kept on both
_WEB_METRICS = ("mrr@10", "ndcg@10", "recall@20", "recall@100")

PAPER_FORMATS: dict[str, PaperFormat] = {
    # The whole corpus (every split's facts and images) is the gallery, as in UniVL-DR.
    "webqa": PaperFormat(
        "mmr.corpus.papers.webqa:convert",
        _WEB_METRICS,
        (CollectionPart("", "questions", "text"),),
        SPLITS,
        "UniVL-DR, MARVEL (WebQA as UniVL-DR ships it)",
    ),
    # The same for MARVEL's ClueWeb22-MM: text.parquet and image.parquet are the gallery; its queries are anchor
    # texts (ClueWeb22-MM/readme.md: "Generate anchor text as query for each document").
    "clueweb22-mm": PaperFormat(
        "mmr.corpus.papers.clueweb:convert",
        _WEB_METRICS,
        (CollectionPart("", "anchors", "text"),),
        SPLITS,
        "MARVEL (ClueWeb22-MM as its code reads it)",
    ),
    # The gallery is one split's images (5,000 for MSCOCO, 1,000 for Flickr30k on test), as in the papers.
    "mscoco": PaperFormat(
        "mmr.corpus.papers.karpathy:convert", _CAPTION_METRICS, _CAPTION_DIRECTIONS, ("test",), "Karpathy split"
    ),
    "flickr30k": PaperFormat(
        "mmr.corpus.papers.karpathy:convert", _CAPTION_METRICS, _CAPTION_DIRECTIONS, ("test",), "Karpathy split"
    ),
}


def paper_format(name: str) -> PaperFormat:
    if name not in PAPER_FORMATS:
        raise ValueError(f"unknown corpus format {name!r}. Available: {sorted(PAPER_FORMATS)}")
    return PAPER_FORMATS[name]
