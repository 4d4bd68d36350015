import json

import pytest

from mmr.corpus.format import Corpus, CorpusFormatError, read_documents, write_documents
from mmr.types import Document


def test_roundtrip_keeps_relative_image_paths(tmp_path):
    (tmp_path / "media").mkdir()
    image = tmp_path / "media" / "cat.png"
    image.write_bytes(b"x")
    docs = [
        Document("img/cat", "image", "A cat.", str(image), {"source": "t", "category": "animals"}),
        Document("txt/1", "text", "a small domesticated carnivore"),
    ]
    path = tmp_path / "corpus.jsonl"
    assert write_documents(docs, path) == 2
    first = json.loads(path.read_text().splitlines()[0])
    assert first["image_path"] == "media/cat.png"
    assert list(read_documents(path)) == docs


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"modality": "text", "text": "x"}', "missing"),
        ('{"id": "a", "modality": "audio", "text": "x"}', "modality"),
        ('{"id": "a", "modality": "image", "text": "x"}', "image_path"),
        ("not json", "not JSON"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "ok", "modality": "text", "text": "fine"}\n' + line + "\n")
    with pytest.raises(CorpusFormatError, match=f"c.jsonl:2.*{message}"):
        list(read_documents(path))


def test_corpus_rejects_duplicates_and_fingerprint_tracks_content():
    a = Document("a", "text", "one")
    with pytest.raises(CorpusFormatError, match="duplicate"):
        Corpus("c", (a, a))
    base = Corpus("c", (a, Document("b", "text", "two")))
    changed = Corpus("c", (a, Document("b", "text", "two!")))
    assert base.fingerprint != changed.fingerprint
    assert base.fingerprint == Corpus("c", (a, Document("b", "text", "two"))).fingerprint
    assert base["b"].text == "two" and "zz" not in base
