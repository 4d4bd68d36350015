"""The Search tab in headless Chromium: side-by-side columns, grading, the modality filter, the
document view and image queries; each test saves a screenshot to test-artifacts/."""

from __future__ import annotations

import os
import re

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.app.search_helpers import STAMP, make_oversized_file, read_ratings
from tests.app.search_page import TIMEOUT_MS, SearchPage

pytestmark = [pytest.mark.app, pytest.mark.browser]

LABELS = {"bm25": "BM25", "zeroshot-verbal": "Zero-shot verbalisation"}


@pytest.fixture
def search_page(running_app, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield SearchPage(page).open(running_app.url)
    context.close()


def rating_rows(running_app, **where) -> list[dict]:
    return [row for row in read_ratings(running_app.db_path) if all(row[k] == v for k, v in where.items())]


def test_side_by_side_results_mark_shared_hits_and_save_a_grade(running_app, search_page, artifacts_dir):
    search_page.choose("stamps", ["BM25", "Zero-shot verbalisation"])
    name = search_page.page.locator("#rater textarea, #rater input").first
    name.fill("browser-test")  # the page gave this browser an anonymous name; claiming one replaces it
    name.press("Enter")
    search_page.page.locator("#rater-status").get_by_text("browser-test").wait_for()
    search_page.search("frog")
    expect(search_page.page.locator("#grade-1-0")).to_be_visible()
    assert search_page.visible_columns() == [0, 1]
    assert search_page.status() == "Searched 949 documents for “frog” with 2 retrievers."

    # every "also:" badge names the other retriever's rank exactly as that retriever ranked the document
    ranking = Client(running_app.url, verbose=False).predict(
        "frog", "stamps", list(LABELS), 10, api_name="/search_json"
    )["results"]
    texts = [search_page.card_texts(c) for c in (0, 1)]
    for c, other in ((0, 1), (1, 0)):
        other_ranks = {h["doc_id"]: h["rank"] for h in ranking[other]["hits"]}
        other_label = LABELS[ranking[other]["retriever"]]
        assert len(texts[c]) == len(ranking[c]["hits"])
        for text, hit in zip(texts[c], ranking[c]["hits"], strict=True):
            assert text.startswith(f"#{hit['rank']} ·")
            expected = f"also: {other_label} #{other_ranks[hit['doc_id']]}" if hit["doc_id"] in other_ranks else None
            assert (expected in text) if expected else ("also:" not in text), (text, expected)
    assert any("also:" in text for text in texts[0]), "the frog stamps are found by both retrievers"
    search_page.screenshot(artifacts_dir / "search-side-by-side.png")

    search_page.grade(1, 2, 2)
    hit = ranking[1]["hits"][2]
    assert f"`{hit['doc_id']}`" in search_page.status() or hit["doc_id"] in search_page.status()
    rows = rating_rows(running_app, query_text="frog", rater="browser-test")
    assert [(r["retriever"], r["doc_id"], r["rank"], r["grade"]) for r in rows] == [
        ("zeroshot-verbal", hit["doc_id"], 3, 2)
    ]
    assert rows[0]["score"] == pytest.approx(hit["score"], rel=1e-5)


def test_modality_filter_rerenders_without_searching_and_grades_the_shown_hit(running_app, search_page, artifacts_dir):
    page = search_page.page
    search_page.choose("mixed", ["BM25", "Zero-shot verbalisation"])
    search_page.search("frog")
    expect(page.locator("#grade-1-0")).to_be_visible()
    everything = search_page.card_texts(1)
    assert {"image", "text"} <= {t.split(" · ")[2].split()[0] for t in everything}, everything
    search_page.grade(1, 0, 1)  # a status the filter must leave alone: it does not search again
    status_before = search_page.status()

    search_page.show("texts")
    expect(page.locator(".prose.column-header").nth(1)).to_contain_text("shown (texts)")
    texts = search_page.card_texts(1)
    assert len(texts) >= 2 and all(" · text" in t for t in texts), texts
    assert texts == [t for t in everything if " · text" in t], "the filter keeps the texts, in rank order"
    assert not search_page.card_has_image(1, 0)
    assert search_page.status() == status_before

    # the second card now shows a text further down the ranking: its grade must land on that text
    detail = search_page.open_details(1, 1)
    doc_id = re.search(r"Id:\s*(\S+)", detail).group(1)
    assert doc_id.startswith("wn/"), detail
    shown_rank = int(texts[1].split(" ·")[0].lstrip("#"))
    assert shown_rank > 2
    search_page.grade(1, 1, 3)
    assert doc_id in search_page.status()
    search_page.screenshot(artifacts_dir / "search-filter-texts.png")
    rows = rating_rows(running_app, query_text="frog", collection="mixed", grade=3)
    assert [(r["retriever"], r["doc_id"], r["rank"]) for r in rows] == [("zeroshot-verbal", doc_id, shown_rank)]

    search_page.show("images")
    expect(page.locator(".prose.column-header").nth(1)).to_contain_text("shown (images)")
    images = search_page.card_texts(1)
    assert images and all(" · image" in t for t in images), images
    assert search_page.card_has_image(1, 0)
    search_page.show("all")
    expect(page.locator(".prose.column-header").nth(1)).not_to_contain_text("shown (")
    assert search_page.card_texts(1) == everything


def test_document_view_shows_the_whole_document(running_app, search_page, artifacts_dir):
    page = search_page.page
    search_page.choose("stamps", ["BM25", "Zero-shot verbalisation"])
    search_page.search("frog")
    expect(page.locator("#details-0-0")).to_be_visible()
    top = Client(running_app.url, verbose=False).predict("frog", "stamps", ["bm25"], 1, api_name="/search_json")
    doc_id = top["results"][0]["hits"][0]["doc_id"]
    detail = search_page.open_details(0, 0)
    for part in (
        "Image document · animals",
        f"Id: {doc_id}",
        "Caption: A frog.",
        "Modality: image",
        "amphibians",
        "tuxpaint",
        "Returned by: BM25 #1",
    ):
        assert part in detail, (part, detail)
    image = page.locator("#doc-detail-image img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") > 100
    assert image.bounding_box()["height"] > 250, "the document view shows the image large"
    search_page.detail.scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "search-detail.png")
    page.locator("#doc-detail-close").click()
    expect(search_page.detail).to_be_hidden()


def test_retriever_overview_says_what_each_loaded_retriever_is(running_app, search_page, artifacts_dir):
    page = search_page.page
    overview = page.locator("#retriever-overview")
    overview.get_by_text("What these retrievers are").click()
    table = overview.locator("table")
    expect(table).to_be_visible()
    rows = {row.locator("td").first.inner_text(): row for row in table.locator("tbody tr").all()}
    # one row per retriever the app loaded: the picker's choices for any collection
    available = Client(running_app.url, verbose=False).predict(api_name="/judging_options")["collections"]
    assert {name for names in available.values() for name in names} == {
        re.search(r"\(([^()]+)\)$", label).group(1) for label in rows
    }
    assert rows["BM25 (bm25)"].locator("td").last.inner_text() == "no training"
    zeroshot = rows["Zero-shot verbalisation (zeroshot-verbal)"].inner_text()
    assert "baseline" in zeroshot and "ImageNet class names" in zeroshot
    for label, row in rows.items():
        served = row.locator("td").last.inner_text()
        assert served == "no training" or served.startswith("dev MRR@10 "), (label, served)
    if not os.environ.get("MMR_CLIP_PATH"):  # the app below inherits this environment
        expect(overview).to_contain_text("Not configured on this machine:")
        expect(overview.locator("li", has_text="CLIP zero-shot")).to_contain_text("set MMR_CLIP_PATH")
    overview.scroll_into_view_if_needed()
    page.screenshot(path=artifacts_dir / "search-retriever-overview.png")


def test_image_query_finds_the_same_stamp_and_grades_it(running_app, search_page, artifacts_dir, tmp_path):
    page = search_page.page
    search_page.choose("stamps", ["BM25", "Zero-shot verbalisation"])
    search_page.upload_query_image(STAMP)
    expect(page.locator("#query-preview img")).to_be_visible()
    expect(page.locator("#search-status")).to_have_text("Image ready: press Search.")
    search_page.search("")
    assert search_page.status() == "Searched 949 documents for your image with 2 retrievers."
    expect(page.locator("#grade-1-0")).to_be_visible()
    # the zero-shot retriever sees the image itself: the very same stamp comes first
    top = search_page.card_texts(1)[0]
    assert top.startswith("#1 · 1.000 · image") and "A frog." in top and search_page.card_has_image(1, 0), top
    search_page.screenshot(artifacts_dir / "search-image-query.png")
    search_page.grade(1, 0, 3)
    rows = [r for r in read_ratings(running_app.db_path) if r["query_key"].startswith("image:") and r["grade"] == 3]
    assert len(rows) == 1 and rows[0]["image_sha"] and rows[0]["retriever"] == "zeroshot-verbal"
    assert rows[0]["query_key"] == f"image:{rows[0]['image_sha']}" and "frog" in rows[0]["doc_id"]

    # an upload over the app's 10 MB limit is refused by Gradio in the browser, with a message that says why;
    # the results and the status of the last search stay, and the next search works
    status = search_page.status()
    page.locator("#query-image button[aria-label*='Clear'], #query-image button[aria-label*='clear']").first.click()
    expect(page.locator("#query-preview img")).to_be_hidden()
    search_page.upload_query_image(make_oversized_file(tmp_path))
    toast = page.get_by_text(re.compile(r"exceed the maximum allowed size of 10(\.0)? ?MB", re.I)).first
    expect(toast).to_be_visible()
    page.wait_for_timeout(600)  # let the toast finish fading in for the screenshot
    search_page.screenshot(artifacts_dir / "search-upload-too-large.png", full_page=False)
    assert search_page.status() == status
    assert "MB" in page.locator("#query-image").inner_text(), "the upload box states the size limit"
    search_page.search("a frog")
    assert search_page.status() == "Searched 949 documents for “a frog” with 2 retrievers."
