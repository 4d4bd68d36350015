"""MSCOCO and Flickr30k as the Karpathy split files ship them (``dataset_coco.json``, ``dataset_flickr30k.json``).

    {"images": [{"filename", "imgid", "split", "sentids", "sentences": [{"raw", "tokens", "imgid", "sentid"}],
                 "filepath" (MSCOCO only)}, ...], "dataset": "coco" | "flickr30k"}

Two collections, one per direction, because the papers search a different gallery in each:
``NAME`` holds the images (text: the first caption, for display) and each caption is a query for its image;
``NAME-captions`` holds the captions as text documents and each image is a query for its five captions.
Only the images of the chosen splits are imported (test: the papers' 5K MSCOCO and 1K Flickr30k galleries).
"""

from __future__ import annotations

from pathlib import Path

from mmr.corpus.format import CorpusFormatError
from mmr.corpus.papers.json_stream import iter_json_array
from mmr.corpus.papers.sink import ConvertOptions, PaperQuery, PaperSink, document_at, one_line, required
from mmr.progress import ProgressBar

# Karpathy's split names -> this project's; restval is the part of MSCOCO's val set Karpathy trains on.
SPLIT_OF = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
IMAGES, CAPTIONS = "", "-captions"  # the suffixes of the two collections (see mmr.corpus.papers)


def convert(source: Path, sink: PaperSink, options: ConvertOptions) -> None:
    source = Path(source)
    images_root = Path(options.images_root) if options.images_root else source.parent
    missing: list[Path] = []
    for where, image in ProgressBar(iter_json_array(source, "images"), desc="Karpathy images", unit="image"):
        split = SPLIT_OF.get(required(image, "split", where))
        if split is None:
            raise CorpusFormatError(f"{where}: split {image['split']!r} is none of {sorted(SPLIT_OF)}")
        if split not in options.splits:
            continue
        path = images_root / image.get("filepath", "") / required(image, "filename", where)
        if not path.exists():
            missing.append(path)  # reported once, at the end, with the count
            continue
        _convert_image(image, str(path.resolve()), split, sink, options, where)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image files are missing under {images_root} (--images-root), e.g. {missing[:3]}"
        )


def _convert_image(image: dict, path: str, split: str, sink: PaperSink, options: ConvertOptions, where: str) -> None:
    image_id = f"img/{required(image, 'imgid', where)}"
    sentences = required(image, "sentences", where)
    if not isinstance(sentences, list):
        raise CorpusFormatError(f"{where}: 'sentences' is not a list")
    captions: dict[str, str] = {}  # caption id -> its text
    for i, sentence in enumerate(sentences):
        at = f"{where}.sentences[{i}]"
        if not isinstance(sentence, dict):
            raise CorpusFormatError(f"{at}: expected an object")
        text = one_line(sentence.get("raw") or " ".join(sentence.get("tokens") or []))
        if not text:
            raise CorpusFormatError(f"{at}: an empty caption")
        captions[f"cap/{required(sentence, 'sentid', at)}"] = text
    if not captions:
        raise CorpusFormatError(f"{where}: an image without captions")
    metadata = {"source": options.format_name, "filename": str(image["filename"])}
    first_caption = next(iter(captions.values()))
    sink.document(IMAGES, document_at(where, image_id, "image", first_caption, path, metadata), where)
    for caption_id, text in captions.items():
        caption_metadata = {"source": options.format_name, "image": image_id}
        sink.document(CAPTIONS, document_at(where, caption_id, "text", text, metadata=caption_metadata), where)
        sink.query(IMAGES, PaperQuery(caption_id.replace("/", "-"), split, text, (image_id,)), where)
    sink.query(CAPTIONS, PaperQuery(image_id.replace("/", "-"), split, path, tuple(captions)), where)
