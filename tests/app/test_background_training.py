"""`make demo` on a fresh store, in small: the app answers with the baselines at once, trains every method
in the background through the real training code (`mmr train-all` in a child process) and brings each one
in while it serves, with no restart. Then what the trained methods show, on the same app.

The app is started once for the module; what it shows while training is observed right after it starts
(in the fixture), so no test depends on the order the tests run in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from mmr.config import Settings
from mmr.retrievers import RETRIEVERS, TRAINING_ORDER
from mmr.training.locks import FileLock
from mmr.training.status import DONE, pipeline_lock_path, read_status
from tests.app.conftest import RunningApp
from tests.app.search_page import SearchPage

pytestmark = [pytest.mark.app, pytest.mark.browser, pytest.mark.slow]

TRAINING_TIMEOUT = 600  # seconds for all eight methods on the tiny store, on a busy 2-core machine


def _search(client: Client, retrievers: list[str], text: str = "a frog") -> dict[str, dict]:
    results = {}
    for start in range(0, len(retrievers), 4):
        answer = client.predict(text, "stamps", retrievers[start : start + 4], 5, api_name="/search_json")
        assert "error" not in answer, answer
        results.update({result["retriever"]: result for result in answer["results"]})
    return results


def _picker_labels(page) -> list[str]:
    return [label.strip() for label in page.locator("#retrievers label").all_text_contents()]


@dataclass
class TrainingApp:
    app: RunningApp
    settings: Settings
    client: Client
    first_search: dict = field(default_factory=dict)  # as soon as the app answered
    picker_while_training: list[str] = field(default_factory=list)
    panel_while_training: str = ""
    arrived: dict[str, float] = field(default_factory=dict)  # method -> seconds after the first search
    page: object = None  # a page opened while training, left open

    @property
    def url(self) -> str:
        return self.app.url

    def wait_until_all_served(self) -> None:
        start = time.monotonic()
        while len(self.arrived) < len(TRAINING_ORDER) and time.monotonic() - start < TRAINING_TIMEOUT:
            waiting = [name for name in TRAINING_ORDER if name not in self.arrived]
            for name, result in _search(self.client, waiting).items():
                if result["hits"]:
                    self.arrived[name] = time.monotonic() - start
            time.sleep(2)
        status = read_status(self.settings)
        states = {name: (m.state, m.error) for name, m in status.methods.items()} if status else None
        assert set(self.arrived) == set(TRAINING_ORDER), f"not served after {TRAINING_TIMEOUT}s: {states}"


@pytest.fixture(scope="module")
def trained_app(tiny_store, tmp_path_factory, browser, artifacts_dir):
    """The app on a private copy of the tiny store, training in the background; observed at once."""
    import shutil
    from dataclasses import replace

    root = tmp_path_factory.mktemp("background")
    shutil.copytree(tiny_store.index_store, root / "index_store", symlinks=True)
    settings = replace(tiny_store, index_store=root / "index_store", data_dir=root / "data")
    app = RunningApp(
        root / "app-data",
        extra_env={
            "MMR_INDEX_STORE": str(settings.index_store),
            "MMR_TRAIN_IN_BACKGROUND": "1",
            "MMR_RELOAD_SECONDS": "1",
        },
    )
    app.start()
    observed = TrainingApp(app, settings, Client(app.url, verbose=False))
    observed.first_search = _search(observed.client, ["bm25", "zeroshot-verbal", "lsr"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(app.url)
    page.locator("#training-status .training-bar").first.wait_for(timeout=120_000)
    observed.panel_while_training = page.locator("#training-status").inner_text()
    observed.picker_while_training = _picker_labels(page)
    page.locator("#training-status").screenshot(path=artifacts_dir / "training-panel-tiny.png")
    observed.page = page
    yield observed
    page.close()
    app.stop()


def test_the_baselines_answer_at_once_and_the_panel_shows_the_training(trained_app):
    first = trained_app.first_search
    assert first["bm25"]["hits"] and first["zeroshot-verbal"]["hits"], "the baselines did not answer at once"
    assert not first["lsr"]["hits"] and "python -m mmr train lsr" in first["lsr"]["error"], first["lsr"]
    assert "Training in the background:" in trained_app.panel_while_training
    assert "training · " in trained_app.panel_while_training
    assert RETRIEVERS["lsr"].label not in trained_app.picker_while_training
    assert RETRIEVERS["bm25"].label in trained_app.picker_while_training


def test_every_method_comes_in_while_the_app_serves(trained_app):
    pid = trained_app.app.process.pid
    trained_app.wait_until_all_served()
    assert trained_app.app.process.poll() is None and trained_app.app.process.pid == pid, "the app restarted"
    status = read_status(trained_app.settings)
    assert all(m.state == DONE for m in status.methods.values()), status.methods
    assert set(status.methods) == set(TRAINING_ORDER)
    after = _search(trained_app.client, list(TRAINING_ORDER), text="a red flower")
    assert all(result["hits"] and not result["error"] for result in after.values()), after
    # the page opened while training gained every method in its picker without a reload; the panel emptied
    page = trained_app.page
    for name in TRAINING_ORDER:
        expect(page.locator("#retrievers")).to_contain_text(RETRIEVERS[name].label, timeout=30_000)
    expect(page.locator("#training-status .training-bar")).to_have_count(0, timeout=30_000)


def test_a_second_app_on_a_store_being_trained_watches_instead_of_training(copy_tiny_store, tmp_path):
    with FileLock(pipeline_lock_path(copy_tiny_store)):  # as a running trainer holds it
        second = RunningApp(
            tmp_path / "second-data",
            extra_env={"MMR_INDEX_STORE": str(copy_tiny_store.index_store), "MMR_TRAIN_IN_BACKGROUND": "1"},
        )
        second.start()
        try:
            assert "another process is training" in second.log_path.read_text()
            assert read_status(copy_tiny_store) is None, "a second trainer started"
        finally:
            second.stop()


def test_sparse_hits_come_with_the_terms_they_share_with_the_query(trained_app):
    """LSR's hits carry their explanation (top and shared terms), in the API and in the detail view."""
    trained_app.wait_until_all_served()
    client = trained_app.client
    answer = client.predict("a red flower", "stamps", ["lsr"], 5, api_name="/search_json")
    (result,) = answer["results"]
    assert set(result["explanations"]) == {hit["doc_id"] for hit in result["hits"]}
    for hit in result["hits"]:
        explanation = result["explanations"][hit["doc_id"]]
        # the sparse score is the dot product over the shared terms: the explanation must add up to it
        assert explanation["score"] == pytest.approx(hit["score"], rel=1e-3, abs=1e-4)
        contributions = [t["contribution"] for t in explanation["shared_terms"]]
        assert contributions == sorted(contributions, reverse=True)
        assert all(t["query_weight"] > 0 and t["document_weight"] > 0 for t in explanation["shared_terms"])
        # Each side's list is its heaviest words: any shared word heavier than the lightest one shown must be
        # shown. (Whether those words are the query's own is the model's business: the evaluation's
        # lexical-grounding row measures it.)
        for side, weight_key in (("query", "query_weight"), ("document", "document_weight")):
            shown = explanation[f"{side}_terms"]
            weights = [t["weight"] for t in shown]
            assert shown and weights == sorted(weights, reverse=True) and weights[-1] > 0
            every_term_shown = len(shown) == explanation[f"{side}_nonzeros"]
            floor = 0.0 if every_term_shown else weights[-1]
            names = {t["term"] for t in shown}
            assert all(t["term"] in names for t in explanation["shared_terms"] if t[weight_key] > floor), side


def test_univl_image_hits_say_which_captions_they_borrowed(trained_app):
    """UniVL-DR's image hits carry their class names and the training captions their embedding borrowed."""
    trained_app.wait_until_all_served()
    client = trained_app.client
    answer = client.predict("a frog", "stamps", ["univl-dr"], 5, api_name="/search_json")
    (result,) = answer["results"]
    assert set(result["explanations"]) == {hit["doc_id"] for hit in result["hits"]}  # every hit is an image
    for hit in result["hits"]:
        explanation = result["explanations"][hit["doc_id"]]
        assert explanation["class_names"]
        borrowed = explanation["borrowed_captions"]
        assert len(borrowed) == 5 and all(b["caption"] for b in borrowed)
        weights = [b["weight"] for b in borrowed]
        assert weights == sorted(weights, reverse=True) and sum(weights) == pytest.approx(1.0, abs=1e-4)


def test_sparse_hit_shows_the_terms_it_shares_with_the_query(trained_app, browser, artifacts_dir):
    trained_app.wait_until_all_served()
    search_page = SearchPage(browser.new_page(viewport={"width": 1400, "height": 1000})).open(trained_app.url)
    page = search_page.page
    expect(page.locator("#retrievers")).to_contain_text("Dense2Sparse LSR")  # a page opened now lists it
    search_page.choose("stamps", ["BM25", "Dense2Sparse LSR"])
    search_page.search("a red flower")
    headers = page.locator(".prose.column-header")
    column = next(c for c in range(2) if "Dense2Sparse LSR" in headers.nth(c).inner_text())  # registry order
    expect(page.locator(f"#details-{column}-0")).to_be_visible()
    assert "shared: " in search_page.card_texts(column)[0]
    assert not any("shared: " in text for text in search_page.card_texts(1 - column)), "BM25 explains nothing"
    detail = search_page.open_details(column, 0)
    for part in ("Why Dense2Sparse LSR matched: score", "shared word", "Query's top words:", "Document's top words:"):
        assert part in detail, (part, detail)
    search_page.detail.scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "search-sparse-terms.png")


def test_univl_hit_shows_the_captions_its_image_borrowed(trained_app, browser, artifacts_dir):
    trained_app.wait_until_all_served()
    search_page = SearchPage(browser.new_page(viewport={"width": 1400, "height": 1000})).open(trained_app.url)
    page = search_page.page
    expect(page.locator("#retrievers")).to_contain_text("UniVL-DR")
    search_page.choose("stamps", ["UniVL-DR"])
    search_page.search("a frog")
    expect(page.locator("#details-0-0")).to_be_visible()
    assert "borrowed: " in search_page.card_texts(0)[0]
    detail = search_page.open_details(0, 0)
    for part in ("What UniVL-DR reads in this image", "Class names (ImageNet, from the pixels):", "borrowed caption"):
        assert part in detail, (part, detail)
    search_page.detail.scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "search-borrowed-captions.png")
