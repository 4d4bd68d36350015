"""A published checkpoint as a retriever (mmr/retrievers/preset.py), with a stand-in reader whose answers are known:
the folder variable, the captions it reads, dense and sparse indexes, search, reload and explanations."""

from __future__ import annotations

import pytest
from PIL import Image

from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.index import IndexMismatchError
from mmr.presets.base import PresetFilesError, PresetSpec
from mmr.retrievers import RETRIEVERS
from mmr.retrievers.base import Resources
from mmr.retrievers.preset import PresetRetriever, load_preset_model
from mmr.types import Document, Query
from tests.presets.fake_preset import WORDS
from tests.tiny_bert import save_tiny_bert

VARIABLE = "MMR_FAKE_PRESET_PATH"


def fake_retriever(sparse: bool) -> type[PresetRetriever]:
    name = f"fake-{'sparse' if sparse else 'dense'}"  # a process reads each preset once, by name
    spec = PresetSpec(
        name,
        "Fake",
        "test",
        reader="tests.presets.fake_preset:read_fake",
        variable=VARIABLE,
        source="the test",
        checkpoint="weights.bin",
        options={"sparse": sparse},
    )
    return type("FakePreset", (PresetRetriever,), {"name": name, "spec": spec})


@pytest.fixture
def folder(tmp_path, monkeypatch):
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"weights")
    save_tiny_bert(folder / "vocabulary", WORDS)
    monkeypatch.setenv(VARIABLE, str(folder))
    return folder


@pytest.fixture
def resources(tmp_path):
    return Resources(Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data"), device="cpu")


def corpus(tmp_path) -> Corpus:
    def image(name: str, colour: str) -> str:
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (12, 10), colour).save(path)
        return str(path)

    return Corpus(
        "tiny",
        (
            Document("t/boat", "text", "a blue boat"),
            Document("t/cat", "text", "a green cat"),
            # the text is what a stamp's query says: never read; the caption in metadata is the document's own
            Document("i/red", "image", "a dog", image("red", "red"), {"caption": "sky"}),
            Document("i/grass", "image", "a cat", image("grass", "green"), {}),
        ),
    )


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_a_preset_indexes_searches_and_reloads_reading_only_the_documents_own_captions(
    sparse, folder, resources, tmp_path
):
    retriever_class = fake_retriever(sparse)
    docs = corpus(tmp_path)
    built = retriever_class.build(docs, resources, tmp_path / "index")
    assert built.model.captions_seen == ["sky", ""]  # metadata captions; never the documents' text
    loaded = retriever_class.load(docs, resources, tmp_path / "index")
    assert loaded.model is built.model  # read once per process
    for retriever in (built, loaded):
        assert retriever.search(Query(text="boat"), k=1)[0].doc_id == "t/boat"
        assert retriever.search(Query(text="sky"), k=1)[0].doc_id == "i/red"
        hits = retriever.search(Query(image=Image.new("RGB", (8, 8), "green"), image_sha="g"), k=2)
        assert {hit.doc_id for hit in hits} == {"i/grass", "t/cat"}
    changed = Corpus("tiny", docs.documents[:3])
    with pytest.raises(IndexMismatchError, match="stale"):
        retriever_class.load(changed, resources, tmp_path / "index")


def test_a_sparse_preset_explains_a_hit_by_the_words_it_shares(folder, resources, tmp_path):
    retriever = fake_retriever(sparse=True).build(corpus(tmp_path), resources, tmp_path / "index")
    explanation = retriever.explain(Query(text="a blue boat"), "t/boat")
    assert {term["term"] for term in explanation["shared_terms"]} == {"blue", "boat"}
    assert (
        fake_retriever(sparse=False)
        .build(corpus(tmp_path), resources, tmp_path / "dense")
        .explain(Query(text="boat"), "t/boat")
        is None
    )


def test_the_folder_variable_says_what_to_set_and_where_the_files_come_from(tmp_path, monkeypatch, resources):
    spec = fake_retriever(False).spec
    monkeypatch.delenv(VARIABLE, raising=False)
    with pytest.raises(PresetFilesError, match=VARIABLE):
        load_preset_model(spec, resources)
    monkeypatch.setenv(VARIABLE, str(tmp_path))
    with pytest.raises(PresetFilesError, match="has no weights.bin; it comes from the test"):
        spec.folder()
    (tmp_path / "text").mkdir()
    spec_with_base = PresetSpec(**{**spec.__dict__, "bases": {"text": "hub/text", "vision": "hub/vision"}})
    assert spec_with_base.base(tmp_path, "text") == str(tmp_path / "text")  # a local copy wins
    assert spec_with_base.base(tmp_path, "vision") == "hub/vision"


def test_every_published_preset_is_a_retriever_built_only_where_its_folder_is_named(monkeypatch):
    presets = {name: spec for name, spec in RETRIEVERS.items() if spec.preset}
    assert {"univl-dr-webqa", "clip-dpr-webqa", "marvel-ance-webqa", "ciea-webqa", "d2s-mscoco-blip"} <= set(presets)
    for name, spec in presets.items():
        monkeypatch.delenv(spec.needs_variable, raising=False)
        assert spec.needs_variable in spec.unmet_requirement()
        assert spec.retriever_class().name == name and not spec.trained
