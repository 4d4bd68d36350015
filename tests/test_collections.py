import json

import pytest
from PIL import Image

from mmr.collections import add_collection, collections, load_collection
from mmr.config import Settings
from mmr.corpus.format import CorpusFormatError


def test_user_collection_is_registered_and_loadable(tmp_path):
    settings = Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")
    (tmp_path / "mine" / "img").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "mine" / "img" / "a.png")
    corpus_file = tmp_path / "mine" / "docs.jsonl"
    corpus_file.write_text(
        json.dumps({"id": "a", "modality": "image", "image_path": "img/a.png", "text": "a black square"})
        + "\n"
        + json.dumps({"id": "b", "modality": "text", "text": "notes about squares"})
        + "\n"
    )
    add_collection(settings, "mine", corpus_file)
    assert "mine" in collections(settings) and "stamps" in collections(settings)
    loaded = load_collection(settings, "mine")
    assert len(loaded) == 2
    assert Image.open(loaded["a"].image_path).size == (8, 8)  # the path still resolves from the copy


def test_bad_user_corpus_is_refused_with_its_line(tmp_path):
    settings = Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "modality": "image", "image_path": "nope.png"}\n{"id": 1}\n')
    with pytest.raises(CorpusFormatError, match="bad.jsonl:2"):
        add_collection(settings, "mine", bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"id": "x", "modality": "image", "image_path": "nope.png"}\n')
    with pytest.raises(FileNotFoundError, match="1 image files are missing"):
        add_collection(settings, "mine", missing)
    with pytest.raises(ValueError, match="built-in"):
        add_collection(settings, "stamps", missing)
    with pytest.raises(KeyError, match="Available"):
        load_collection(settings, "mine")
