"""Where a converter puts what it reads, one item at a time: documents into a corpus JSONL per collection,
queries and qrels into the benchmark layout of ``mmr.corpus.splits``, so nothing is held but document ids."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mmr.corpus.format import CorpusFormatError, DocumentWriter
from mmr.corpus.papers import CollectionPart
from mmr.corpus.splits import SPLITS
from mmr.types import Document

logger = logging.getLogger(__name__)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}")
# PIL's format name -> the file extension the image is written with
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


@dataclass(frozen=True)
class PaperQuery:
    """A query and what the paper judges relevant to it (grade 1); ``text`` is an image path for image queries."""

    qid: str
    split: str
    text: str
    relevant: tuple[str, ...]


@dataclass(frozen=True)
class ConvertOptions:
    format_name: str
    splits: tuple[str, ...]
    media_dir: Path  # where images shipped inside the corpus files are written
    images_root: Path | None = None  # where images shipped as files are


@dataclass
class PartCounts:
    documents: int = 0
    queries: Counter = field(default_factory=Counter)  # split -> queries written
    without_relevant: int = 0  # queries left out: nothing to find
    dangling: int = 0  # relevant ids that are not in the collection
    left_out: int = 0  # documents the corpus ships that cannot be served (an image no reader opens)


def required(obj: dict, key: str, where: str):
    if obj.get(key) in (None, ""):
        raise CorpusFormatError(f"{where}: missing field {key!r}")
    return obj[key]


def document_at(where: str, *args, **kwargs) -> Document:
    """A ``Document``, or a ``CorpusFormatError`` that says which input line could not make one."""
    try:
        return Document(*args, **kwargs)
    except ValueError as err:
        raise CorpusFormatError(f"{where}: {err}") from err


def one_line(text: str) -> str:
    """Queries and qrels are one line each: tabs and newlines inside a text become spaces."""
    return " ".join(str(text).split())


def write_image(raw: bytes, media_dir: Path, image_id: str, where: str) -> Path:
    """An image shipped inside a corpus file, written under ``media_dir`` with the extension of its format;
    a ``CorpusFormatError`` if PIL cannot read it."""
    try:
        kind = Image.open(io.BytesIO(raw)).format  # reads the header only
    except (UnidentifiedImageError, OSError) as err:
        raise CorpusFormatError(f"{where}: not an image PIL can read") from err
    # the id itself where it is a plain name (WebQA's are numbers); a digest of it where it could leave the folder
    stem = image_id if _PLAIN_NAME.fullmatch(image_id) else hashlib.sha256(image_id.encode()).hexdigest()[:24]
    path = Path(media_dir) / f"{stem}.{EXTENSIONS.get(kind, (kind or 'img').lower())}"
    if not (path.exists() and path.stat().st_size == len(raw)):  # an import run again keeps what it wrote
        path.write_bytes(raw)
    return path


class PaperSink:
    """Open for the length of one conversion. Its files replace those of an earlier import only when it ends
    without an error: a failed import leaves the collection as it was."""

    def __init__(self, corpora_dir: Path, name: str, parts: tuple[CollectionPart, ...], benchmark_folder: Path):
        self.parts = {part.suffix: part for part in parts}
        self.counts = {suffix: PartCounts() for suffix in self.parts}
        self._writers = {s: DocumentWriter(corpora_dir / f"{name}{s}.jsonl") for s in self.parts}
        self._ids: dict[str, set[str]] = {suffix: set() for suffix in self.parts}
        self._left_out: dict[str, set[str]] = {suffix: set() for suffix in self.parts}
        self._folders = {s: Path(benchmark_folder) / p.setting for s, p in self.parts.items()}
        self._files: dict[tuple[str, str, str], object] = {}

    def __enter__(self) -> PaperSink:
        for suffix, writer in self._writers.items():
            writer.__enter__()
            self._folders[suffix].mkdir(parents=True, exist_ok=True)
            for split in SPLITS:
                for kind in ("queries.tsv", "qrels"):
                    path = self._folders[suffix] / f"{split}.{kind}.tmp"
                    self._files[(suffix, split, kind)] = path.open("w", encoding="utf-8")
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        for handle in self._files.values():
            handle.close()
            tmp = Path(handle.name)
            if exc_type is None:
                tmp.replace(tmp.with_suffix(""))
            else:
                tmp.unlink()
        for writer in self._writers.values():
            writer.__exit__(exc_type, exc, traceback)

    def document(self, suffix: str, doc: Document, where: str) -> None:
        if doc.id in self._ids[suffix]:
            raise CorpusFormatError(f"{where}: document id {doc.id!r} appears twice")
        self._ids[suffix].add(doc.id)
        self._writers[suffix].write(doc)
        self.counts[suffix].documents += 1

    def leave_out(self, suffix: str, doc_id: str, where: str, why: str) -> None:
        """A document the corpus ships but that cannot be served: counted and logged, not written. A query
        judges it relevant no more, so one that had nothing else relevant is left out too."""
        logger.warning("%s: document %s left out: %s", where, doc_id, why)
        self._left_out[suffix].add(doc_id)
        self.counts[suffix].left_out += 1

    def query(self, suffix: str, query: PaperQuery, where: str) -> None:
        counts = self.counts[suffix]
        if query.split not in SPLITS:
            raise CorpusFormatError(f"{where}: split {query.split!r} is none of {list(SPLITS)}")
        relevant = [doc_id for doc_id in dict.fromkeys(query.relevant) if doc_id not in self._left_out[suffix]]
        if any(len(key.split()) != 1 for key in (query.qid, *relevant)):  # a TREC qrels line splits on spaces
            raise CorpusFormatError(f"{where}: a query or document id is empty or holds a space: {query.qid!r}")
        if not relevant:
            counts.without_relevant += 1
            return
        self._files[(suffix, query.split, "queries.tsv")].write(f"{query.qid}\t{one_line(query.text)}\n")
        qrels = self._files[(suffix, query.split, "qrels")]
        for doc_id in relevant:
            qrels.write(f"{query.qid} 0 {doc_id} 1\n")
        counts.dangling += sum(doc_id not in self._ids[suffix] for doc_id in relevant)
        counts.queries[query.split] += 1
