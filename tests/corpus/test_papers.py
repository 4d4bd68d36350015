"""The papers' corpora converted into this project's corpus, queries and qrels: exactly, streaming, and
with an error that names the file and place of anything malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmr.collections import CollectionBenchmark, benchmark_of
from mmr.config import Settings
from mmr.corpus.format import CorpusFormatError, read_documents
from mmr.corpus.papers.importer import import_corpus
from mmr.corpus.papers.json_stream import iter_json_array
from mmr.types import Document
from tests.corpus.papers_fixtures import (
    COLOURS,
    WEBQA_FACTS,
    write_clueweb,
    write_karpathy,
    write_parquet,
    write_webqa,
)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")


def _documents(settings: Settings, name: str) -> dict[str, Document]:
    return {doc.id: doc for doc in read_documents(settings.corpora_dir / f"{name}.jsonl")}


def test_webqa_becomes_facts_images_questions_and_qrels(settings, tmp_path):
    imported = import_corpus(settings, "webqa", write_webqa(tmp_path / "webqa"), "web")
    docs = _documents(settings, "web")
    assert sorted(docs) == ["img/101", "img/102", "img/103", "txt/s1", "txt/s2", "txt/s3"]
    assert docs["txt/s2"] == Document("txt/s2", "text", WEBQA_FACTS["s2"], metadata={"source": "webqa"})
    for image_id, colour in COLOURS.items():
        doc = docs[f"img/{image_id}"]
        assert (doc.modality, doc.text, doc.metadata["title"], doc.metadata["caption"]) == (
            "image",
            f"a square number {image_id}",
            f"title {image_id}",
            f"a square number {image_id}",  # the caption the published models read with the image
        )
        assert doc.image_path.startswith(str(settings.media_dir / "web"))
        assert Image.open(doc.image_path).getpixel((0, 0)) == colour  # the bytes its lineidx offset points at

    benchmark = benchmark_of(settings, "web")
    assert benchmark == CollectionBenchmark(
        settings.benchmark_dir / "imported" / "web", "questions", ("mrr@10", "ndcg@10", "recall@20", "recall@100")
    )
    train, dev, test = (benchmark.load(split) for split in ("train", "dev", "test"))
    assert train.queries == {"q1": '"What is the Eiffel Tower made of?"', "q2": "What colour is the square?"}
    assert train.qrels == {"q1": {"img/101": 1, "txt/s1": 1}, "q2": {"img/102": 1}}
    assert (dev.queries, dev.qrels) == ({"q3": "Can penguins fly?"}, {"q3": {"txt/s2": 1}})
    assert (test.queries, test.qrels) == ({"q4": "Which way does the Nile flow?"}, {"q4": {"txt/s3": 1}})
    assert imported[0].counts.without_relevant == 1 and imported[0].counts.dangling == 0


def test_webqa_without_a_line_index_finds_images_in_one_pass(settings, tmp_path):
    source = write_webqa(tmp_path / "webqa")
    (source / "imgs.lineidx.new").unlink()
    import_corpus(settings, "webqa", source, "web", splits=("test",))
    docs = _documents(settings, "web")
    assert Image.open(docs["img/103"].image_path).getpixel((0, 0)) == COLOURS["103"]
    assert benchmark_of(settings, "web").load("train").queries == {}


def _break(path, old: str, new: str) -> None:
    path.write_bytes(path.read_bytes().replace(old.encode(), new.encode(), 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("all_docs.json", '{"snippet_id": "s2"', '{"snippet_id" "s2"', r"all_docs.json:2: not JSON"),
        ("all_docs.json", '"fact": "Penguins cannot fly but swim well."', '"fact": ""', r"all_docs.json:2: .*no text"),
        ("dev.json", '"Q": "Can penguins fly?"', '"q": "?"', r"dev.json:1: missing field 'Q'"),
        ("train.json", '"txt_posFacts": ["s1"]', '"txt_posFacts": "s1"', r"train.json:1: 'txt_posFacts' is not a list"),
        ("train.json", '"qid": "q1"', '"qid": "q 1"', r"train.json:1: a query or document id .* holds a space"),
        ("imgs.lineidx.new", "102\t", "102\tx", r"imgs.lineidx.new:2: expected 'image_id<TAB>byte offset'"),
        ("imgs.tsv", "iVBOR", "iV!OR", r"imgs.tsv at byte \d+: image \d+ is not valid base64"),
    ],
)
def test_malformed_webqa_names_file_and_place(settings, tmp_path, file, old, new, message):
    source = write_webqa(tmp_path / "webqa")
    _break(source / file, old, new)
    with pytest.raises(CorpusFormatError, match=message):
        import_corpus(settings, "webqa", source, "web")
    assert not (settings.corpora_dir / "web.jsonl").exists()  # nothing half written is left as the corpus
    written = [path for path in settings.index_store.rglob("*") if path.is_file()]
    assert all(path.parent == settings.media_dir / "web" for path in written)  # images are kept for a rerun


def test_a_failed_import_again_leaves_the_earlier_one_as_it_was(settings, tmp_path):
    source = write_webqa(tmp_path / "webqa")
    import_corpus(settings, "webqa", source, "web")
    before = {path: path.read_bytes() for path in settings.index_store.rglob("*") if path.is_file()}
    _break(source / "test.json", '"qid": "q5"', '"id": "q5"')
    with pytest.raises(CorpusFormatError, match=r"test.json:2: missing field 'qid'"):
        import_corpus(settings, "webqa", source, "web")
    assert {path: path.read_bytes() for path in settings.index_store.rglob("*") if path.is_file()} == before


def test_an_offset_into_the_wrong_line_is_caught(settings, tmp_path):
    source = write_webqa(tmp_path / "webqa")
    lines = (source / "imgs.lineidx.new").read_text().splitlines()
    (source / "imgs.lineidx.new").write_text("\n".join(["103\t0", *lines[1:]]) + "\n")  # 0: the junk line
    with pytest.raises(CorpusFormatError, match=r"imgs.tsv at byte 0: expected the line of image 103, found b'999'"):
        import_corpus(settings, "webqa", source, "web")


def test_karpathy_coco_gives_both_directions_on_the_test_gallery(settings, tmp_path):
    source = write_karpathy(tmp_path / "coco", "coco")
    imported = import_corpus(settings, "mscoco", source, "coco", images_root=tmp_path / "coco" / "images")
    assert [c.name for c in imported] == ["coco", "coco-captions"]
    images, captions = _documents(settings, "coco"), _documents(settings, "coco-captions")
    red = tmp_path / "coco" / "images" / "val2014" / "red.png"
    assert images == {
        "img/0": Document("img/0", "image", "A red square.", str(red), {"source": "mscoco", "filename": "red.png"}),
        "img/1": Document(
            "img/1",
            "image",
            "A green square on a table.",
            str(red.with_name("green.png")),
            {"source": "mscoco", "filename": "green.png"},
        ),
    }
    assert sorted(captions) == ["cap/0", "cap/1", "cap/2", "cap/3"]
    assert captions["cap/3"] == Document(
        "cap/3", "text", "Grass green tile", None, {"source": "mscoco", "image": "img/1"}
    )

    to_image = benchmark_of(settings, "coco").load("test")
    assert to_image.queries == {
        "cap-0": "A red square.",
        "cap-1": "Something red",
        "cap-2": "A green square on a table.",
        "cap-3": "Grass green tile",
    }
    assert to_image.qrels == {
        "cap-0": {"img/0": 1},
        "cap-1": {"img/0": 1},
        "cap-2": {"img/1": 1},
        "cap-3": {"img/1": 1},
    }
    to_text = benchmark_of(settings, "coco-captions")
    assert (to_text.setting, to_text.query_modality) == ("image-to-text", "image")
    assert to_text.metrics == ("hit_rate@1", "hit_rate@5", "hit_rate@10")
    test = to_text.load("test")
    assert test.queries == {"img-0": str(red), "img-1": str(red.with_name("green.png"))}
    assert test.qrels == {"img-0": {"cap/0": 1, "cap/1": 1}, "img-1": {"cap/2": 1, "cap/3": 1}}


def test_karpathy_flickr_restval_trains_and_val_is_dev(settings, tmp_path):
    source = write_karpathy(tmp_path / "flickr", "flickr30k")
    import_corpus(settings, "flickr30k", source, "flickr", splits=("train", "dev"))  # images next to the JSON
    assert sorted(_documents(settings, "flickr")) == ["img/2", "img/3"]
    benchmark = benchmark_of(settings, "flickr")
    assert benchmark.load("train").qrels == {"cap-5": {"img/3": 1}}
    assert benchmark.load("dev").qrels == {"cap-4": {"img/2": 1}}
    assert benchmark.load("test").queries == {}


def test_karpathy_errors_name_the_image(settings, tmp_path):
    source = write_karpathy(tmp_path / "coco", "coco")
    data = json.loads(source.read_text())
    del data["images"][1]["filename"]
    source.write_text(json.dumps(data))
    with pytest.raises(CorpusFormatError, match=r"dataset_coco.json: images\[1\]: missing field 'filename'"):
        import_corpus(settings, "mscoco", source, "coco", images_root=tmp_path / "coco" / "images")
    data["images"][1]["filename"] = "gone.png"
    source.write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match="1 image files are missing"):
        import_corpus(settings, "mscoco", source, "coco", images_root=tmp_path / "coco" / "images")


def test_json_array_items_stream_across_chunk_boundaries(tmp_path):
    path = write_karpathy(tmp_path, "flickr30k")
    expected = json.loads(path.read_text())["images"]
    for chunk in (1, 7, 64, 1 << 20):
        assert [item for _, item in iter_json_array(path, "images", chunk_chars=chunk)] == expected
    path.write_text('{"dataset": "x", "images": [{"a": 1}, {"b": 2} {"c": 3}]}')
    with pytest.raises(CorpusFormatError, match=r"after images\[1\]: expected ',' or ']'"):
        list(iter_json_array(path, "images", chunk_chars=5))
    path.write_text('{"images": [{"a": 1}, {"b": ')
    with pytest.raises(CorpusFormatError, match=r"images\[1\]: not JSON or cut short"):
        list(iter_json_array(path, "images", chunk_chars=5))
    path.write_text('{"pictures": []}')
    with pytest.raises(CorpusFormatError, match="no 'images' array"):
        list(iter_json_array(path, "images"))


def test_built_in_and_plain_collections_keep_their_benchmarks(settings):
    assert benchmark_of(settings, "stamps") == CollectionBenchmark(settings.benchmark_dir, "images")
    assert benchmark_of(settings, "mixed") == CollectionBenchmark(settings.benchmark_dir, "mixed")
    assert benchmark_of(settings, "nothing-here") is None
    with pytest.raises(ValueError, match="built-in"):
        import_corpus(settings, "webqa", settings.index_store, "stamps")
    with pytest.raises(ValueError, match="Available"):
        import_corpus(settings, "clueweb", settings.index_store, "web")


def test_an_image_id_that_is_a_path_stays_inside_the_media_folder(settings, tmp_path):
    source = write_webqa(tmp_path / "webqa")
    _break(source / "all_imgs.json", '"image_id": 103', '"image_id": "/03"')
    for name in ("imgs.tsv", "imgs.lineidx.new"):  # same length: the offsets still hold
        _break(source / name, "103\t", "/03\t")
    import_corpus(settings, "webqa", source, "web")
    path = _documents(settings, "web")["img//03"].image_path
    assert Path(path).parent == settings.media_dir / "web"
    assert Image.open(path).getpixel((0, 0)) == COLOURS["103"]


def test_clueweb_becomes_texts_images_anchor_queries_and_qrels(settings, tmp_path):
    (imported,) = import_corpus(settings, "clueweb22-mm", write_clueweb(tmp_path / "cw"), "cw")
    docs = _documents(settings, "cw")
    texts = ["txt/text_100000", "txt/text_100001", "txt/text_100002"]
    assert sorted(docs) == ["img/img_100000", "img/img_100001", "img/img_100002", *texts]
    assert docs["txt/text_100000"] == Document(
        "txt/text_100000",
        "text",
        "The Golden Gate Bridge spans the strait at San Francisco.",
        None,
        {"source": "clueweb22-mm"},
    )
    for image_id, caption, colour in [
        ("img_100000", "a red square logo", (255, 0, 0)),
        ("img_100001", "", (0, 255, 0)),  # a null caption
        ("img_100002", "a blue square button", (0, 0, 255)),
    ]:
        doc = docs[f"img/{image_id}"]
        assert (doc.modality, doc.text, doc.metadata) == (
            "image",
            caption,
            {"source": "clueweb22-mm", "caption": caption},
        )
        assert doc.image_path == str(settings.media_dir / "cw" / f"{image_id}.png")
        assert Image.open(doc.image_path).getpixel((0, 0)) == colour

    benchmark = benchmark_of(settings, "cw")
    assert benchmark == CollectionBenchmark(
        settings.benchmark_dir / "imported" / "cw", "anchors", ("mrr@10", "ndcg@10", "recall@20", "recall@100")
    )
    train, dev, test = (benchmark.load(split) for split in ("train", "dev", "test"))
    assert train.queries == {"7": "golden gate bridge san francisco", "8": "red square logo"}
    assert train.qrels == {"7": {"txt/text_100000": 1}, "8": {"img/img_100000": 1}}  # negatives are not judged
    assert (dev.queries, dev.qrels) == ({"9": "how long do koalas sleep"}, {"9": {"txt/text_100001": 1}})
    # query 12's one positive is the image no reader opens: it is left out with it
    assert test.qrels == {"10": {"txt/text_100002": 1}, "11": {"img/img_100001": 1}}
    counts = imported.counts
    assert (counts.documents, counts.left_out, counts.without_relevant, counts.dangling) == (6, 1, 1, 0)
    assert imported.summary() == (
        "cw: 6 documents; anchors queries: 1 dev, 2 test, 2 train; 1 documents left out (unreadable images);"
        " 1 queries left out (nothing relevant)"
    )


def test_clueweb_reads_every_parquet_file_a_batch_at_a_time(settings, tmp_path, monkeypatch):
    """Never a whole file: image.parquet holds every image's bytes (here: one row per batch, across row groups)."""
    from mmr.corpus.papers import clueweb

    source = write_clueweb(tmp_path / "cw")
    import_corpus(settings, "clueweb22-mm", source, "whole")
    opened, batches = [], []
    original_init, original_iter = pq.ParquetFile.__init__, pq.ParquetFile.iter_batches

    def init(self, path, **kwargs):
        opened.append((Path(path).name, kwargs))
        original_init(self, path, **kwargs)

    def iter_batches(self, **kwargs):
        for batch in original_iter(self, **kwargs):
            batches.append((tuple(batch.schema.names), batch.num_rows))
            yield batch

    def whole(*args, **kwargs):
        raise AssertionError("a whole parquet file was read")

    monkeypatch.setattr(pq.ParquetFile, "__init__", init)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)
    monkeypatch.setattr(pq.ParquetFile, "read", whole)
    monkeypatch.setattr(pq, "read_table", whole)
    monkeypatch.setattr(clueweb, "IMAGE_BATCH", 1)
    monkeypatch.setattr(clueweb, "TEXT_BATCH", 2)
    import_corpus(settings, "clueweb22-mm", source, "batched")

    assert [name for name, _ in opened] == ["text.parquet", "image.parquet", "train.parquet", "dev.parquet"] + [
        "test.parquet"
    ]
    assert all(kwargs["buffer_size"] > 0 and kwargs["pre_buffer"] is False for _, kwargs in opened)
    assert [rows for names, rows in batches if "img" in names] == [1, 1, 1, 1]
    assert max(rows for _, rows in batches) == 2
    assert ("qid", "query", "img_id", "text_id") in {names for names, _ in batches}  # the negatives are never read
    whole_docs = {doc.id: (doc.text, doc.metadata) for doc in _documents(settings, "whole").values()}
    assert {doc.id: (doc.text, doc.metadata) for doc in _documents(settings, "batched").values()} == whole_docs
    assert benchmark_of(settings, "batched").load("test").qrels == benchmark_of(settings, "whole").load("test").qrels


def _strings(*values) -> tuple[pa.DataType, list]:
    return pa.string(), list(values)


_DEV_QUERY = {"qid": (pa.int64(), [9]), "img_id": _strings(None), "text_id": _strings("text_100001")}


@pytest.mark.parametrize(
    ("file", "columns", "message"),
    [
        (
            "text.parquet",
            {"text_id": _strings("text_100000"), "text": _strings("x")},
            r"text.parquet: no column\(s\) \['surround'\]; its columns are \['text_id', 'text'\]",
        ),
        (
            "text.parquet",
            {"text_id": _strings("text_100000", None), "surround": _strings("a", "b")},
            r"text.parquet: row 1: missing field 'text_id'",
        ),
        (
            "text.parquet",
            {"text_id": _strings("text_100000", "text_100001"), "surround": _strings("a", " ")},
            r"text.parquet: row 1: .*no text",
        ),
        ("dev.parquet", {**_DEV_QUERY, "query": _strings(None)}, r"dev.parquet: row 0: missing field 'query'"),
        (
            "dev.parquet",
            {**_DEV_QUERY, "qid": _strings("q 9"), "query": _strings("q")},
            r"dev.parquet: row 0: .*a space",
        ),
    ],
)
def test_malformed_clueweb_names_file_and_row(settings, tmp_path, file, columns, message):
    source = write_clueweb(tmp_path / "cw")
    write_parquet(source / file, columns)
    with pytest.raises(CorpusFormatError, match=message):
        import_corpus(settings, "clueweb22-mm", source, "cw")
    assert not (settings.corpora_dir / "cw.jsonl").exists()  # nothing half written is left as the corpus


def test_clueweb_images_without_bytes_are_left_out_as_unreadable_ones_are(settings, tmp_path):
    source = write_clueweb(tmp_path / "cw")
    columns = {"img_id": _strings("img_100000", "img_100001"), "caption": _strings("c", "d")}
    write_parquet(source / "image.parquet", {**columns, "img": (pa.binary(), [b"", None])})
    (imported,) = import_corpus(settings, "clueweb22-mm", source, "cw")
    assert sorted(_documents(settings, "cw")) == ["txt/text_100000", "txt/text_100001", "txt/text_100002"]
    assert imported.counts.left_out == 2
    assert benchmark_of(settings, "cw").load("train").qrels == {"7": {"txt/text_100000": 1}}


def test_clueweb_files_that_are_missing_or_not_parquet(settings, tmp_path):
    source = write_clueweb(tmp_path / "cw")
    (source / "dev.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"dev.parquet is missing: leave its split out"):
        import_corpus(settings, "clueweb22-mm", source, "cw")
    import_corpus(settings, "clueweb22-mm", source, "cw", splits=("train", "test"))
    (source / "image.parquet").write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(CorpusFormatError, match=r"image.parquet: not a parquet file"):
        import_corpus(settings, "clueweb22-mm", source, "cw")
    (source / "image.parquet").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"not a ClueWeb22-MM folder as MARVEL ships it: no \['image.parquet'\]"
    ):
        import_corpus(settings, "clueweb22-mm", source, "cw")
