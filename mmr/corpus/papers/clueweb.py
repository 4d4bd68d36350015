"""ClueWeb22-MM, MARVEL's benchmark, as its folder of parquet files ships (``data/ClueWeb22-MM/`` in MARVEL's README).

    train.parquet, dev.parquet, test.parquet  qid, query, img_id, text_id, img_negFacts, txt_negFacts
    text.parquet                              text_id, surround      -> text documents   txt/<text_id>
    image.parquet                             img_id, caption, img   -> image documents  img/<img_id>

Read in OpenMatch/MARVEL's code (ANCE/data.py, ANCE/gen_embeddings.py and ClueWeb22-MM/retrieval_benchmark/:
split_newdata.py, get_qrel.py, get_collection_no_duplicate.py): these file and column names; a query's positive
is its ``img_id`` or its ``text_id``, the other one null, and get_qrel.py judges both where both are set (as
here); ``img`` holds an image file's bytes, opened with ``PIL.Image.open(io.BytesIO(img))``; a caption may be
null; the gallery is every text and image document (retrieval.py searches them all). The negatives are
training hard negatives: not judged, not read. ``test_qrels.txt`` is not read: get_qrel.py writes it from
test.parquet's positives, which is what this reads. No published file was read here (ClueWeb22 is licensed).

Every file is read a batch of rows at a time (``parquet_stream``), never whole. MARVEL's own pipeline dropped one
image of image.parquet that "cannot be opened normally" (new_image.py): an image PIL cannot read is left out,
logged and counted, and a query whose only positive it was is left out with it.
"""

from __future__ import annotations

from pathlib import Path

from mmr.corpus.format import CAPTION_METADATA, CorpusFormatError
from mmr.corpus.papers.parquet_stream import parquet_rows
from mmr.corpus.papers.sink import ConvertOptions, PaperQuery, PaperSink, document_at, one_line, required, write_image
from mmr.progress import ProgressBar

TEXTS, IMAGES = "text.parquet", "image.parquet"
QUERY_FILES = {"train": "train.parquet", "dev": "dev.parquet", "test": "test.parquet"}
QUERY_COLUMNS = ("qid", "query", "img_id", "text_id")
IMAGE_BATCH, TEXT_BATCH = 16, 1024  # rows per batch: images are up to megabytes each, texts a few hundred bytes


def convert(source: Path, sink: PaperSink, options: ConvertOptions) -> None:
    source = Path(source)
    missing = [name for name in (TEXTS, IMAGES) if not (source / name).exists()]
    if missing:
        raise FileNotFoundError(f"{source} is not a ClueWeb22-MM folder as MARVEL ships it: no {missing}")
    count, rows = parquet_rows(source / TEXTS, ("text_id", "surround"), TEXT_BATCH)
    for where, row in ProgressBar(rows, total=count, desc="ClueWeb22-MM texts", unit="text"):
        text_id = f"txt/{required(row, 'text_id', where)}"
        doc = document_at(where, text_id, "text", one_line(row["surround"] or ""), metadata=_source(options))
        sink.document("", doc, where)
    _convert_images(source / IMAGES, sink, options)
    for split in options.splits:
        path = source / QUERY_FILES[split]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: leave its split out (--split) to import the others")
        count, rows = parquet_rows(path, QUERY_COLUMNS, TEXT_BATCH)
        for where, row in ProgressBar(rows, total=count, desc=f"ClueWeb22-MM {split} queries", unit="query"):
            relevant = [f"img/{row['img_id']}"] if row["img_id"] not in (None, "") else []
            relevant += [f"txt/{row['text_id']}"] if row["text_id"] not in (None, "") else []
            query = PaperQuery(str(required(row, "qid", where)), split, required(row, "query", where), tuple(relevant))
            sink.query("", query, where)


def _source(options: ConvertOptions) -> dict[str, str]:
    return {"source": options.format_name}


def _convert_images(path: Path, sink: PaperSink, options: ConvertOptions) -> None:
    options.media_dir.mkdir(parents=True, exist_ok=True)
    count, rows = parquet_rows(path, ("img_id", "caption", "img"), IMAGE_BATCH)
    for where, row in ProgressBar(rows, total=count, desc="ClueWeb22-MM images", unit="image"):
        image_id = str(required(row, "img_id", where))
        if not isinstance(row["img"], bytes) or not row["img"]:
            sink.leave_out("", f"img/{image_id}", where, "no image bytes")
            continue
        try:
            image_path = write_image(row["img"], options.media_dir, image_id, f"{where} (image {image_id})")
        except CorpusFormatError:
            sink.leave_out("", f"img/{image_id}", where, "not an image PIL can read")
            continue
        caption = one_line(row["caption"] or "")
        # the caption is part of the image document, as in WebQA: MARVEL encodes "caption: ..." with the image
        metadata = {**_source(options), CAPTION_METADATA: caption}
        sink.document("", document_at(where, f"img/{image_id}", "image", caption, str(image_path), metadata), where)
