"""Two raters judge the same pool in two browsers, and neither can change the other's grades: once with
local names bound to tokens, once signed in (Hugging Face's side of the sign-in stubbed at the boundary
where Gradio hands the profile over: tests/app/oauth_stub_app.py)."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid

import pytest
from gradio_client import Client
from playwright.sync_api import Page, expect

from mmr.retrievers import RETRIEVERS
from tests.app.conftest import RunningApp

pytestmark = [pytest.mark.app, pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 60_000
LABELS = {0: "0 not relevant", 3: "3 perfect", None: "can't judge"}


def _open(browser, url: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    return page


def _claim(page: Page, name: str) -> str:
    """Types a rater name and answers the identity bar's status."""
    box = page.locator("#rater textarea, #rater input").first
    expect(box).to_have_value(re.compile("^anon-|^" + re.escape(name)))
    box.fill(name)
    box.press("Enter")
    page.wait_for_function(  # the answer names the name (taken or now yours); while it runs, a timer shows
        """name => {
            const text = document.querySelector('#rater-status').innerText.trim();
            return text.includes(name) && !/^[0-9.]+s/.test(text);
        }""",
        arg=name,
    )
    return page.locator("#rater-status").inner_text()


def _create(page: Page, name: str) -> str:
    """A session of BM25 and the zero-shot retriever, top 2, with one query; answers its join code."""
    page.get_by_role("tab", name="Judge (blind)").click()
    page.get_by_text("New session", exact=True).click()
    page.locator("#judge-new-name textarea").fill(name)
    for spec in RETRIEVERS.values():
        box = page.locator("#judge-retrievers").get_by_label(spec.label, exact=True)
        if box.count():
            box.set_checked(spec.label in ("BM25", "Zero-shot verbalisation"))
    k = page.locator("#judge-k input[type=number]")
    k.fill("2")
    k.press("Tab")
    page.locator("#judge-create").click()
    page.locator("#judge-status").get_by_text("Created session").wait_for()
    page.locator("#judge-query-lines textarea").fill("frog")
    page.locator("#judge-add").click()
    page.locator("#judge-status").get_by_text("Added 1 queries").wait_for()
    page.locator("#judge-manage").get_by_text("join code").wait_for()
    return re.search(r"join code (\S+)", page.locator("#judge-manage").inner_text()).group(1).strip("`.")


def _join(page: Page, code: str) -> None:
    page.get_by_role("tab", name="Judge (blind)").click()
    page.locator("#judge-join-code textarea, #judge-join-code input").first.fill(code)
    page.locator("#judge-join").click()
    page.locator("#judge-status").get_by_text("Joined").wait_for()


def _grade_first(page: Page, grade: int | None) -> str:
    """Grades the pool's first card; answers its document id."""
    page.locator("#judge-header").get_by_text("Query 1 of 1").wait_for()
    doc = page.locator("#pool-card-0 code").inner_text().strip()
    page.locator("#pool-grade-0").get_by_label(LABELS[grade], exact=True).check()
    page.locator("#judge-status").get_by_text("Saved document 1.").wait_for()
    return doc


def _judgments(db_path, session: str) -> dict[tuple[str, str], int | None]:
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute(
            "SELECT j.rater, j.doc_id, j.grade FROM judgments j JOIN judging_sessions s ON s.id = j.session_id "
            "WHERE s.name = ?",
            (session,),
        ).fetchall()
    return {(rater, doc): grade for rater, doc, grade in rows}


def _settles_at(db_path, session: str, expected: dict) -> dict:
    """The session's judgments once they equal ``expected``, or as they are after 30 s (a grade given
    again shows the same "Saved" line as before, so the page cannot tell the test when it landed)."""
    deadline = time.monotonic() + 30
    while (found := _judgments(db_path, session)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_two_local_raters_judge_one_pool_and_keep_their_own_grades(running_app, browser, artifacts_dir):
    alice_name, bob_name = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    session = f"two raters {uuid.uuid4().hex[:6]}"
    alice = _open(browser, running_app.url)
    assert f"saved as {alice_name}" in _claim(alice, alice_name)
    code = _create(alice, session)

    bob = _open(browser, running_app.url)
    refused = _claim(bob, alice_name)  # bob tries to write as alice
    assert f"the name '{alice_name}' is taken by another rater" in refused and "Still anon-" in refused
    assert f"saved as {bob_name}" in _claim(bob, bob_name)
    _join(bob, code)

    doc = _grade_first(alice, 3)
    assert _grade_first(bob, 0) == doc  # the same pool, the same first document
    assert _judgments(running_app.db_path, session) == {(alice_name, doc): 3, (bob_name, doc): 0}
    _grade_first(bob, None)  # bob's "can't judge" replaces bob's grade, not alice's
    expected = {(alice_name, doc): 3, (bob_name, doc): None}
    assert _settles_at(running_app.db_path, session, expected) == expected

    alice.reload()  # alice comes back under her name (the browser kept her token) and sees her own grade
    expect(alice.locator("#rater-status")).to_contain_text(f"saved as {alice_name}")
    alice.get_by_role("tab", name="Judge (blind)").click()
    alice.locator("#judge-session input").click()
    alice.get_by_role("option", name=session).click()
    alice.locator("#judge-header").get_by_text("Query 1 of 1").wait_for()
    expect(alice.locator("#pool-grade-0").get_by_label(LABELS[3], exact=True)).to_be_checked()
    bob.screenshot(path=str(artifacts_dir / "two-raters-local-bob.png"), full_page=True)


@pytest.fixture(scope="module")
def signed_in_app(tmp_path_factory):
    app = RunningApp(
        tmp_path_factory.mktemp("signed-in"),
        script="tests/app/oauth_stub_app.py",
        extra_env={"MMR_SIGN_IN": "huggingface"},
    )
    app.start()
    yield app
    app.stop()


def _sign_in(page: Page, base: str, user: str) -> None:
    page.goto(f"{base}/login/huggingface?user={user}")
    expect(page.locator("#rater-status")).to_contain_text(f"saved as hf:{user}", timeout=TIMEOUT_MS)


def test_two_signed_in_raters_judge_one_pool_and_a_visitor_cannot(signed_in_app, browser, artifacts_dir):
    # localhost, not 127.0.0.1: the session cookie is Secure, and Chromium keeps those for http://localhost
    base = f"http://localhost:{signed_in_app.port}"
    session = f"signed in {uuid.uuid4().hex[:6]}"
    visitor = _open(browser, base)
    expect(visitor.locator("#rater-status")).to_contain_text("Sign in with Hugging Face")
    visitor.get_by_role("tab", name="Judge (blind)").click()
    visitor.get_by_text("New session", exact=True).click()
    visitor.locator("#judge-new-name textarea").fill("visitor's")
    visitor.locator("#judge-create").click()
    visitor.locator("#judge-status").get_by_text("Sign in (or reload for a rater name) to create").wait_for()

    alice = _open(browser, base)
    _sign_in(alice, base, "alice")
    code = _create(alice, session)
    bob = _open(browser, base)
    _sign_in(bob, base, "bob")
    bob.goto(f"{base}/?join={code}")  # the invitation link the owner's page shows
    bob.get_by_role("tab", name="Judge (blind)").click()
    bob.locator("#judge-status").get_by_text("Joined").wait_for()
    doc = _grade_first(alice, 3)
    assert _grade_first(bob, 0) == doc
    assert _judgments(signed_in_app.db_path, session) == {("hf:alice", doc): 3, ("hf:bob", doc): 0}

    # Without the sign-in cookie, naming alice gets nowhere, whatever token comes with it.
    client = Client(base + "/", verbose=False)
    answer = client.predict(session, "q1", doc, "0", "hf:alice", "any", api_name="/judging_submit")
    assert answer == {
        "error": "Sign in with Hugging Face (button at the top) to grade; without signing in you can search and look."
    }
    assert client.predict("alice", api_name="/claim_rater") == {
        "error": "raters sign in with Hugging Face here; names cannot be claimed"
    }
    assert _judgments(signed_in_app.db_path, session) == {("hf:alice", doc): 3, ("hf:bob", doc): 0}
    alice.screenshot(path=str(artifacts_dir / "two-raters-signed-in-alice.png"), full_page=True)
