"""The corpus format any user can produce for their own data: one JSON object per line.

    {"id": "stamps/animals/cat", "modality": "image", "text": "A cat.",
     "image_path": "media/stamps/cat.png", "metadata": {"source": "tuxpaint", "category": "animals"}}
    {"id": "wn/02084071-n", "modality": "text", "text": "a member of the genus Canis ...",
     "metadata": {"source": "wordnet"}}

``id`` is unique; ``modality`` is ``text`` or ``image``; ``text`` is the document text (for an
image, its caption: kept for display and training, never read by a retriever that claims to search
pixels); ``image_path`` is absolute or relative to the JSONL file's folder; ``metadata`` is a flat
map of strings (``source`` and ``category`` are shown in the app; ``caption``, an image's caption that its
corpus ships as part of the document, as WebQA's does, is read by the published models that read captions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmr.types import Document, Modality

# The metadata key of an image document's own caption. Not ``text``: a stamp's text is the query that finds it,
# and a retriever that claims to search pixels must never read that.
CAPTION_METADATA = "caption"


class CorpusFormatError(ValueError):
    pass


def _document_from_json(obj: dict, base_dir: Path, where: str) -> Document:
    missing = {"id", "modality"} - obj.keys()
    if missing:
        raise CorpusFormatError(f"{where}: missing field(s) {sorted(missing)}")
    image_path = obj.get("image_path")
    if image_path and not Path(image_path).is_absolute():
        image_path = str(base_dir / image_path)
    try:
        return Document(
            id=str(obj["id"]),
            modality=obj["modality"],
            text=str(obj.get("text") or ""),
            image_path=image_path,
            metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        )
    except ValueError as err:
        raise CorpusFormatError(f"{where}: {err}") from err


def read_json_lines(path: Path) -> Iterator[tuple[str, dict]]:
    """``("<path>:<line>", object)`` for each non-blank line: the place names the line an error is about."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusFormatError(f"{where}: not JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise CorpusFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield where, obj


def read_documents(path: Path) -> Iterator[Document]:
    path = Path(path)
    for where, obj in read_json_lines(path):
        yield _document_from_json(obj, path.parent, where)


class DocumentWriter:
    """Writes documents one at a time (a corpus converted while it streams), image paths relative to the
    file's folder where possible; the file appears complete, under its name, only when the block ends."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.count = 0
        self._tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        self._handle = None

    def __enter__(self) -> DocumentWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self._tmp.open("w", encoding="utf-8")
        return self

    def write(self, doc: Document) -> None:
        image_path = doc.image_path
        if image_path:
            try:
                image_path = str(Path(image_path).resolve().relative_to(self.path.parent.resolve()))
            except ValueError:
                pass  # outside the corpus folder: keep it absolute
        row = {"id": doc.id, "modality": doc.modality, "text": doc.text}
        if image_path:
            row["image_path"] = image_path
        if doc.metadata:
            row["metadata"] = doc.metadata
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._handle.close()
        if exc_type is None:
            self._tmp.replace(self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_documents(documents: Iterable[Document], path: Path) -> int:
    """Write documents as JSONL, image paths relative to the file's folder where possible."""
    with DocumentWriter(path) as writer:
        for doc in documents:
            writer.write(doc)
    return writer.count


@dataclass(frozen=True)
class Corpus:
    """An ordered, id-addressable collection of documents with a content fingerprint."""

    name: str
    documents: tuple[Document, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for doc in self.documents:
            if doc.id in seen:
                raise CorpusFormatError(f"corpus {self.name!r}: duplicate id {doc.id!r}")
            seen.add(doc.id)
        object.__setattr__(self, "_by_id", {doc.id: doc for doc in self.documents})

    @classmethod
    def from_jsonl(cls, path: Path, name: str | None = None) -> Corpus:
        return cls(name or Path(path).stem, tuple(read_documents(path)))

    @classmethod
    def concat(cls, name: str, corpora: Iterable[Corpus]) -> Corpus:
        return cls(name, tuple(doc for corpus in corpora for doc in corpus.documents))

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, doc_id: str) -> Document:
        return self._by_id[doc_id]  # type: ignore[attr-defined]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._by_id  # type: ignore[attr-defined]

    def of_modality(self, modality: Modality) -> list[Document]:
        return [doc for doc in self.documents if doc.modality == modality]

    @property
    def fingerprint(self) -> str:
        """Changes whenever a document an index was built from changes (id, text or image file)."""
        digest = hashlib.sha256()
        for doc in self.documents:
            digest.update(json.dumps([doc.id, doc.modality, doc.text, doc.image_path]).encode())
        return digest.hexdigest()[:16]
