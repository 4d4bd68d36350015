"""`make demo` on a fresh store, in small: the app answers with the baselines at once, trains every method
in the background through the real training code, and brings each one in while it serves, no restart."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from mmr.retrievers import RETRIEVERS, TRAINING_ORDER
from mmr.training.status import DONE, read_status
from tests.app.conftest import RunningApp

pytestmark = [pytest.mark.app, pytest.mark.browser, pytest.mark.slow]

TRAINING_TIMEOUT = 600  # seconds for all eight methods on the tiny store, on a busy 2-core machine


def _search(client: Client, retrievers: list[str], text: str = "a frog") -> dict[str, dict]:
    answer = client.predict(text, "stamps", retrievers, 5, api_name="/search_json")
    assert "error" not in answer, answer
    return {result["retriever"]: result for result in answer["results"]}


@pytest.fixture
def training_app(copy_tiny_store, tmp_path):
    app = RunningApp(
        tmp_path / "app-data",
        extra_env={
            "MMR_INDEX_STORE": str(copy_tiny_store.index_store),
            "MMR_TRAIN_IN_BACKGROUND": "1",
            "MMR_RELOAD_SECONDS": "1",
        },
    )
    app.start()
    yield app, copy_tiny_store
    app.stop()


def _picker_labels(page) -> list[str]:
    return [label.strip() for label in page.locator("#retrievers label").all_text_contents()]


def test_every_method_comes_in_while_the_app_serves(training_app, browser, artifacts_dir):
    app, settings = training_app
    client = Client(app.url, verbose=False)
    pid = app.process.pid
    first = _search(client, ["bm25", "zeroshot-verbal", "lsr"])
    assert first["bm25"]["hits"] and first["zeroshot-verbal"]["hits"], "the baselines did not answer at once"
    assert not first["lsr"]["hits"] and "python -m mmr train lsr" in first["lsr"]["error"], first["lsr"]

    # the page a visitor opens now: the panel beside the picker shows a method training, with a bar that moves
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(app.url)
    expect(page.locator("#training-status progress").first).to_be_visible(timeout=120_000)
    expect(page.locator("#training-status")).to_contain_text("training ·")
    page.locator("#training-status").screenshot(path=artifacts_dir / "training-panel-tiny.png")
    assert RETRIEVERS["lsr"].label not in _picker_labels(page)

    arrived: dict[str, float] = {}
    start = time.monotonic()
    while len(arrived) < len(TRAINING_ORDER) and time.monotonic() - start < TRAINING_TIMEOUT:
        waiting = [name for name in TRAINING_ORDER if name not in arrived]
        for group in (waiting[:4], waiting[4:]):
            if group:
                for name, result in _search(client, group).items():
                    if result["hits"]:
                        arrived[name] = time.monotonic() - start
        time.sleep(2)
    status = read_status(settings)
    states = {name: (m.state, m.error) for name, m in status.methods.items()} if status else None
    assert set(arrived) == set(TRAINING_ORDER), f"not served after {TRAINING_TIMEOUT}s: {states}"
    assert app.process.poll() is None and app.process.pid == pid, "the app restarted"
    assert all(m.state == DONE for m in status.methods.values()), states
    # in training order, give or take the poll: a method is served once its own release is published
    order = sorted(arrived, key=arrived.get)
    assert order.index("procrustes") < order.index("lsr") and order.index("marvel") < order.index("ciea")

    after = _search(client, list(TRAINING_ORDER[:6]), text="a red flower")
    assert all(result["hits"] and not result["error"] for result in after.values()), after

    # the page open all along gained every method in its picker, without a reload, and the panel emptied
    for name in TRAINING_ORDER:
        expect(page.locator("#retrievers")).to_contain_text(RETRIEVERS[name].label, timeout=30_000)
    expect(page.locator("#training-status progress")).to_have_count(0, timeout=30_000)
    page.close()


def test_a_second_app_on_the_same_store_watches_instead_of_training_again(training_app, tmp_path):
    app, settings = training_app
    deadline = time.monotonic() + 120
    while (read_status(settings) is None or not read_status(settings).alive) and time.monotonic() < deadline:
        time.sleep(0.5)
    trainer = read_status(settings)
    assert trainer is not None and trainer.alive, "the first app started no trainer"
    second = RunningApp(
        tmp_path / "second-data",
        extra_env={"MMR_INDEX_STORE": str(settings.index_store), "MMR_TRAIN_IN_BACKGROUND": "1"},
    )
    second.start()
    try:
        log = second.log_path.read_text()
        assert "another process is training" in log, log[-2000:]
        assert read_status(settings).pid == trainer.pid, "a second trainer took over the store"
    finally:
        second.stop()
