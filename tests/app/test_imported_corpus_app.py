"""The papers' corpora imported with `mmr import-corpus` are searched in the app: WebQA, a Karpathy split and
ClueWeb22-MM imported into a store of their own (BM25 only), the app started on it, each collection searched
through gradio_client."""

from __future__ import annotations

import shutil

import pytest
from gradio_client import Client, handle_file
from typer.testing import CliRunner

from mmr.cli import app as cli
from mmr.config import Settings
from mmr.corpus.format import read_documents
from mmr.types import Document
from tests.app.conftest import RunningApp
from tests.app.search_helpers import SearchView
from tests.corpus.papers_fixtures import write_clueweb, write_karpathy, write_webqa

pytestmark = pytest.mark.app


def _import(*args: str) -> None:
    result = CliRunner().invoke(cli, ["import-corpus", *args, "-r", "bm25"])
    assert result.exit_code == 0, result.output + repr(result.exception)


@pytest.fixture(scope="module")
def imported_store(tiny_store, tmp_path_factory) -> Settings:
    """A private copy of the tiny store (the app needs its built-in collections), the three corpora imported."""
    root = tmp_path_factory.mktemp("imported")
    shutil.copytree(tiny_store.index_store, root / "index_store", symlinks=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MMR_INDEX_STORE", str(root / "index_store"))
        env.setenv("MMR_DATA_DIR", str(root / "data"))
        settings = Settings()
        _import("webqa", str(write_webqa(root / "webqa")), "web")
        coco = write_karpathy(root / "coco", "coco")
        _import("mscoco", str(coco), "coco", "--images-root", str(root / "coco" / "images"))
        _import("clueweb22-mm", str(write_clueweb(root / "clueweb")), "cw")
    return settings


@pytest.fixture(scope="module")
def client(imported_store, tmp_path_factory):
    running = RunningApp(
        tmp_path_factory.mktemp("imported-app"), extra_env={"MMR_INDEX_STORE": str(imported_store.index_store)}
    )
    running.start()
    yield Client(running.url, verbose=False)
    running.stop()


def _documents(settings: Settings, collection: str) -> dict[str, Document]:
    return {doc.id: doc for doc in read_documents(settings.corpora_dir / f"{collection}.jsonl")}


@pytest.mark.parametrize(
    ("collection", "query", "first"),
    [
        ("web", "Which way does the Nile flow?", "txt/s3"),
        ("coco-captions", "Grass green tile", "cap/3"),
        ("cw", "the Golden Gate Bridge", "txt/text_100000"),
    ],
)
def test_an_imported_collection_answers_in_the_app(client, imported_store, collection, query, first):
    answer = client.predict(query, collection, ["bm25"], 10, api_name="/search_json")
    assert "error" not in answer, answer
    (result,) = answer["results"]
    assert result["retriever"] == "bm25" and result["error"] is None
    hits = [hit["doc_id"] for hit in result["hits"]]
    assert hits[0] == first and set(hits) <= set(_documents(imported_store, collection))


def test_the_search_tab_shows_the_imported_documents(client):
    outputs = client.predict("Can penguins fly?", None, "web", ["bm25"], "all", api_name="/search")
    view = SearchView.parse(outputs)
    assert view.status == "Searched 6 documents for “Can penguins fly?” with 1 retriever.", view.status
    assert view.cards[0][0].startswith("**#1**") and "Penguins cannot fly but swim well." in view.cards[0][0]


def test_an_imported_image_gallery_answers_an_image_query(client, imported_store):
    """MSCOCO's gallery holds images only, which BM25 reads as their ImageNet class names: searched with one of
    its own images, it returns that image first and only images of that gallery, shown with their captions."""
    images = _documents(imported_store, "coco")
    outputs = client.predict("", handle_file(images["img/0"].image_path), "coco", ["bm25"], "all", api_name="/search")
    view = SearchView.parse(outputs)
    assert view.status.startswith("Searched 2 documents for "), view.status
    assert "A red square." in view.cards[0][0]  # the query's own image first: its class names are the query's
    assert all(any(doc.text in card for doc in images.values()) for card in view.cards[0])
