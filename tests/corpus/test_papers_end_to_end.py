"""A paper's corpus from its published layout to the paper's metrics: ``mmr import-corpus`` into a fresh index
store, a search of the imported collection, then ``mmr evaluate`` on it. BM25, the cheapest retriever to build."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mmr.cli import app
from mmr.config import Settings
from mmr.service import SearchService
from mmr.types import Query
from tests.corpus.papers_fixtures import write_clueweb, write_karpathy, write_webqa


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """One feature cache for the module: the verbaliser's ImageNet class-name embeddings take most of a test."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def store(tmp_path, monkeypatch, features) -> Settings:
    monkeypatch.setenv("MMR_INDEX_STORE", str(tmp_path / "index_store"))
    monkeypatch.setenv("MMR_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    settings.index_store.mkdir()
    settings.features_dir.symlink_to(features, target_is_directory=True)
    return settings


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.parametrize(
    ("format_name", "write", "name", "setting", "imported", "query", "found"),
    [
        (
            "webqa",
            write_webqa,
            "web",
            "questions",
            "web: 6 documents; questions queries: 1 dev, 1 test, 2 train; 1 queries left out",
            "Which way does the Nile flow?",
            "txt/s3",
        ),
        (
            "clueweb22-mm",
            write_clueweb,
            "cw",
            "anchors",
            "cw: 6 documents; anchors queries: 1 dev, 2 test, 2 train; 1 documents left out (unreadable images)",
            "the Golden Gate Bridge",
            "txt/text_100000",
        ),
    ],
    ids=["webqa", "clueweb22-mm"],
)
def test_web_corpus_import_search_and_the_papers_metrics(
    store, tmp_path, format_name, write, name, setting, imported, query, found
):
    output = _run("import-corpus", format_name, str(write(tmp_path / format_name)), name, "-r", "bm25")
    assert f"imported {imported}" in output
    assert f"built    bm25/{name} index: 6 documents" in output

    service = SearchService.load(store, ["bm25"], [name])
    (result,) = service.search(Query(text=query), ["bm25"], name, k=3)
    assert result.error is None and result.hits[0].doc_id == found

    report = _run("evaluate", "-c", name, "-r", "bm25", "--split", "dev")
    assert f"### `{name}` collection, {setting} setting, dev split (v1)" in report
    assert "| retriever | mrr@10 | ndcg@10 | recall@20 | recall@100 | images in top 10 | queries |" in report
    perfect = "1.000 [1.000, 1.000]"  # "Can penguins fly?", "how long do koalas sleep": the one relevant text first
    assert f"| bm25 | {perfect} | {perfect} | {perfect} | {perfect} |" in report


def test_karpathy_import_evaluates_both_directions(store, tmp_path):
    source = write_karpathy(tmp_path / "coco", "coco")
    images_root = str(tmp_path / "coco" / "images")
    output = _run("import-corpus", "mscoco", str(source), "coco", "--images-root", images_root, "-r", "bm25")
    assert "imported coco: 2 documents; text-to-image queries: 4 test" in output
    assert "imported coco-captions: 4 documents; image-to-text queries: 2 test" in output

    report = _run("evaluate", "-c", "coco", "-c", "coco-captions", "-r", "bm25")
    header = "| retriever | hit_rate@1 | hit_rate@5 | hit_rate@10 | images in top 10 | queries |"
    assert report.count(header) == 2
    sections = report.split("### ")[1:]
    assert sections[0].startswith("`coco` collection, text-to-image setting, test split")
    assert sections[1].startswith("`coco-captions` collection, image-to-text setting, test split")
    # every image query was searched by its pixels (BM25 reads its ImageNet class names) and scored
    assert sections[1].rstrip().endswith("| 2 |") and "| bm25 |" in sections[1]
    assert "No dev queries: import the corpus with `--split dev`" in _run("evaluate", "-c", "coco", "--split", "dev")
