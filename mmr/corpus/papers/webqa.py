"""WebQA as UniVL-DR ships it: a folder of JSON-lines files and the images in one base64 TSV.

    train.json, dev.json, test.json  {"qid", "Q", "A", "img_posFacts", "img_negFacts", "txt_posFacts", ...}
    all_docs.json                    {"snippet_id", "fact", ...}          -> text documents  txt/<snippet_id>
    all_imgs.json                    {"image_id", "caption", "title", ...} -> image documents img/<image_id>
    imgs.tsv                         image_id <TAB> base64 image bytes, one image per line
    imgs.lineidx.new                 image_id <TAB> byte offset of that image's line in imgs.tsv

imgs.tsv holds every image's bytes (tens of gigabytes): it is never read whole. Each image is found by
seeking to its offset, decoded, and written under the media folder. Every positive fact of a question, image
or text, is relevant (grade 1); negatives are not judged.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import BinaryIO

from mmr.corpus.format import CAPTION_METADATA, CorpusFormatError, read_json_lines
from mmr.corpus.papers.sink import ConvertOptions, PaperQuery, PaperSink, document_at, one_line, required, write_image
from mmr.progress import ProgressBar

TEXTS, IMAGES, IMAGE_BYTES, LINE_INDEX = "all_docs.json", "all_imgs.json", "imgs.tsv", "imgs.lineidx.new"
QUERY_FILES = {"train": "train.json", "dev": "dev.json", "test": "test.json"}


def convert(source: Path, sink: PaperSink, options: ConvertOptions) -> None:
    source = Path(source)
    missing = [name for name in (TEXTS, IMAGES, IMAGE_BYTES) if not (source / name).exists()]
    if missing:
        raise FileNotFoundError(f"{source} is not a WebQA folder as UniVL-DR ships it: no {missing}")
    for where, obj in ProgressBar(read_json_lines(source / TEXTS), desc="WebQA text facts", unit="fact"):
        fact_id = required(obj, "snippet_id", where)
        text = one_line(obj.get("fact") or "")
        sink.document("", document_at(where, f"txt/{fact_id}", "text", text, metadata=_source(options)), where)
    _convert_images(source, sink, options)
    for split in options.splits:
        path = source / QUERY_FILES[split]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: leave its split out (--split) to import the others")
        for where, obj in ProgressBar(read_json_lines(path), desc=f"WebQA {split} questions", unit="question"):
            relevant = [f"img/{_fact_id(f, 'image_id', where)}" for f in _facts(obj, "img_posFacts", where)]
            relevant += [f"txt/{_fact_id(f, 'snippet_id', where)}" for f in _facts(obj, "txt_posFacts", where)]
            question = PaperQuery(str(required(obj, "qid", where)), split, required(obj, "Q", where), tuple(relevant))
            sink.query("", question, where)


def _source(options: ConvertOptions) -> dict[str, str]:
    return {"source": options.format_name}


def _facts(obj: dict, key: str, where: str) -> list:
    facts = obj.get(key) or []
    if not isinstance(facts, list):
        raise CorpusFormatError(f"{where}: {key!r} is not a list")
    return facts


def _fact_id(fact, key: str, where: str) -> str:
    """A positive fact is its id, or (as in the original WebQA release) an object that carries it."""
    return str(required(fact, key, where) if isinstance(fact, dict) else fact)


def _convert_images(source: Path, sink: PaperSink, options: ConvertOptions) -> None:
    offsets = read_line_index(source)
    options.media_dir.mkdir(parents=True, exist_ok=True)
    with (source / IMAGE_BYTES).open("rb") as image_bytes:
        for where, obj in ProgressBar(read_json_lines(source / IMAGES), desc="WebQA images", unit="image"):
            image_id = str(required(obj, "image_id", where))
            if image_id not in offsets:
                raise CorpusFormatError(f"{where}: image {image_id} is not in {source / IMAGE_BYTES}")
            raw = read_image_at(image_bytes, offsets[image_id], image_id)
            path = write_image(raw, options.media_dir, image_id, f"{image_bytes.name} (image {image_id})")
            caption = one_line(obj.get("caption") or "")
            # the caption is part of a WebQA image document: the papers' models encode image and caption together
            metadata = {**_source(options), "title": one_line(obj.get("title") or ""), CAPTION_METADATA: caption}
            doc = document_at(where, f"img/{image_id}", "image", caption, str(path), metadata)
            sink.document("", doc, where)


def read_line_index(source: Path) -> dict[str, int]:
    """image id -> byte offset of its line in imgs.tsv: from the line index, or one pass over imgs.tsv without it."""
    index_path = source / LINE_INDEX
    offsets: dict[str, int] = {}
    if not index_path.exists():
        offset = 0
        with (source / IMAGE_BYTES).open("rb") as handle:
            for line in handle:
                offsets[line.partition(b"\t")[0].decode(errors="replace").strip()] = offset
                offset += len(line)
        return offsets
    with index_path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            image_id, _, offset = line.strip().partition("\t")
            if not offset.strip().isdigit():
                raise CorpusFormatError(f"{index_path}:{line_no}: expected 'image_id<TAB>byte offset', got {line!r}")
            offsets[image_id.strip()] = int(offset)
    return offsets


def read_image_at(handle: BinaryIO, offset: int, image_id: str) -> bytes:
    """The decoded bytes of the image whose line starts at ``offset``, checked to be the one asked for."""
    handle.seek(offset)
    found_id, tab, encoded = handle.readline().partition(b"\t")
    where = f"{handle.name} at byte {offset}"
    if not tab or found_id.decode(errors="replace").strip() != image_id:
        raise CorpusFormatError(f"{where}: expected the line of image {image_id}, found {found_id[:40]!r}")
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as err:
        raise CorpusFormatError(f"{where}: image {image_id} is not valid base64 ({err})") from err
