"""Tiny copies of the papers' public corpus layouts, written by the tests that read them."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

COLOURS = {"101": (255, 0, 0), "102": (0, 255, 0), "103": (0, 0, 255)}


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _json_lines(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


WEBQA_FACTS = {
    "s1": "The Eiffel Tower is made of wrought iron.",
    "s2": "Penguins cannot fly but swim well.",
    "s3": "The Nile flows north into the Mediterranean.",
}
WEBQA_QUESTIONS = {
    "train": [
        {
            "qid": "q1",
            "Q": '"What is the Eiffel Tower made of?"',
            "A": "iron",
            "img_posFacts": [101],
            "img_negFacts": [102],
            "txt_posFacts": ["s1"],
            "txt_negFacts": ["s2"],
        },
        # the original WebQA release gives a fact as an object that carries its id
        {
            "qid": "q2",
            "Q": "What colour is the\tsquare?",
            "img_posFacts": [{"image_id": 102, "title": "t"}],
            "txt_posFacts": [],
        },
    ],
    "dev": [{"qid": "q3", "Q": "Can penguins fly?", "img_posFacts": [], "txt_posFacts": ["s2"]}],
    "test": [
        {"qid": "q4", "Q": "Which way does the Nile flow?", "img_posFacts": [], "txt_posFacts": ["s3"]},
        {"qid": "q5", "Q": "A question nothing answers", "img_posFacts": [], "txt_posFacts": []},
    ],
}


def write_webqa(folder: Path) -> Path:
    """A WebQA folder as UniVL-DR ships it. imgs.tsv holds the images in another order than all_imgs.json,
    and a line no offset points at that is not base64: only a reader that seeks by offset gets through."""
    folder.mkdir(parents=True)
    _json_lines(folder / "all_docs.json", [{"snippet_id": k, "fact": v} for k, v in WEBQA_FACTS.items()])
    _json_lines(
        folder / "all_imgs.json",
        [{"image_id": int(i), "title": f"title {i}", "caption": f"a square number {i}"} for i in COLOURS],
    )
    lines = [b"999\tthis line is not an image at all!\n"]
    lines += [f"{i}\t".encode() + base64.b64encode(png_bytes(COLOURS[i])) + b"\n" for i in reversed(COLOURS)]
    (folder / "imgs.tsv").write_bytes(b"".join(lines))
    offsets, offset = [], 0
    for line in lines:
        offsets.append((line.split(b"\t")[0].decode(), offset))
        offset += len(line)
    (folder / "imgs.lineidx.new").write_text("".join(f"{i}\t{o}\n" for i, o in offsets[1:]))
    for split, rows in WEBQA_QUESTIONS.items():
        _json_lines(folder / f"{split}.json", rows)
    return folder


KARPATHY_IMAGES = [
    ("test", 0, "red.png", (255, 0, 0), ["A red square.", "Something red"]),
    ("test", 1, "green.png", (0, 128, 0), ["A green square on a table.", "Grass green tile"]),
    ("val", 2, "blue.png", (0, 0, 255), ["A blue square."]),
    ("restval", 3, "white.png", (255, 255, 255), ["A white square."]),
]


def write_karpathy(folder: Path, dataset: str = "coco") -> Path:
    """A Karpathy split file and its images: MSCOCO's under ``images/<filepath>``, Flickr30k's next to the file."""
    images, sentid = [], 0
    for split, imgid, filename, colour, captions in KARPATHY_IMAGES:
        filepath = "val2014" if dataset == "coco" else ""
        image_folder = folder / "images" / filepath if dataset == "coco" else folder
        image_folder.mkdir(parents=True, exist_ok=True)
        (image_folder / filename).write_bytes(png_bytes(colour))
        sentences = []
        for caption in captions:
            sentences.append({"raw": caption, "tokens": caption.lower().split(), "imgid": imgid, "sentid": sentid})
            sentid += 1
        image = {"filename": filename, "imgid": imgid, "split": split, "sentences": sentences}
        image["sentids"] = [s["sentid"] for s in sentences]
        if filepath:
            image["filepath"] = filepath
        images.append(image)
    path = folder / f"dataset_{dataset}.json"
    path.write_text(json.dumps({"images": images, "dataset": dataset}))
    return path


CLUEWEB_TEXTS = {
    "text_100000": "The Golden Gate Bridge spans the strait\nat San Francisco.",
    "text_100001": "Koalas sleep up to twenty hours a day.",
    "text_100002": "Sourdough bread rises with wild yeast.",
}
# (img_id, caption, image bytes): a null caption, and one row whose bytes no reader opens (as one of MARVEL's)
CLUEWEB_IMAGES = [
    ("img_100000", "a red square logo", png_bytes((255, 0, 0))),
    ("img_100001", None, png_bytes((0, 255, 0))),
    ("img_100002", "a blue square button", png_bytes((0, 0, 255))),
    ("img_100003", "a broken picture", b"\x89PNG but not really"),
]
# split -> (qid, query, img_id, text_id): one positive each, the other one null
CLUEWEB_QUERIES = {
    "train": [(7, "golden gate bridge san francisco", None, "text_100000"), (8, "red square logo", "img_100000", None)],
    "dev": [(9, "how long do koalas sleep", None, "text_100001")],
    "test": [
        (10, "sourdough bread yeast", None, "text_100002"),
        (11, "green square", "img_100001", None),
        (12, "a broken picture", "img_100003", None),  # its only positive is the unreadable image
    ],
}


def write_parquet(path: Path, columns: dict[str, tuple[pa.DataType, list]], row_group_size: int = 2) -> Path:
    """One parquet file; small row groups, so that a reader crosses their boundaries."""
    table = pa.table({name: pa.array(values, type) for name, (type, values) in columns.items()})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_clueweb(folder: Path) -> Path:
    """A ClueWeb22-MM folder in the layout of MARVEL's code: query parquet files per split, text.parquet and
    image.parquet (the images' own bytes); each query's hard negatives name documents of the corpus."""
    folder.mkdir(parents=True)
    text_ids, image_ids = list(CLUEWEB_TEXTS), [row[0] for row in CLUEWEB_IMAGES]
    write_parquet(
        folder / "text.parquet",
        {"text_id": (pa.string(), text_ids), "surround": (pa.string(), list(CLUEWEB_TEXTS.values()))},
    )
    write_parquet(
        folder / "image.parquet",
        {
            "img_id": (pa.string(), image_ids),
            "caption": (pa.string(), [row[1] for row in CLUEWEB_IMAGES]),
            "img": (pa.binary(), [row[2] for row in CLUEWEB_IMAGES]),
        },
    )
    for split, rows in CLUEWEB_QUERIES.items():
        write_parquet(
            folder / f"{split}.parquet",
            {
                "qid": (pa.int64(), [row[0] for row in rows]),
                "query": (pa.string(), [row[1] for row in rows]),
                "img_id": (pa.string(), [row[2] for row in rows]),
                "text_id": (pa.string(), [row[3] for row in rows]),
                "img_negFacts": (pa.list_(pa.string()), [[i for i in image_ids[:2] if i != row[2]] for row in rows]),
                "txt_negFacts": (pa.list_(pa.string()), [[t for t in text_ids[:2] if t != row[3]] for row in rows]),
            },
        )
    return folder
