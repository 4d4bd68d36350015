"""Identity and authorisation, attacked through the public doors only: gradio_client, and raw queue
requests to the page's own events (tests/app/raw_gradio.py), which are marked private and callable all
the same. Every refusal is checked for its message and for the database being exactly as it was."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import pytest

from tests.app.attack_cast import (
    BOTH,
    FROG,
    NO_MATCH,
    Cast,
    grades_of,
    submit,
    writes_nothing,
)
from tests.app.raw_gradio import PageSession
from tests.app.search_helpers import STAMP

pytestmark = pytest.mark.app

# ------------------------------------------------------------------------------------------- identity

BAD_NAMES = [
    " ",
    "x" * 41,
    "x" * 100_000,
    "alice:admin",
    "hf:alice",
    "import:1",
    "nul\x00name",
    "<img src=x onerror=alert(1)>",
    "../../etc/passwd",
    "tab\tname",
    "-leading-dash",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:24] for n in BAD_NAMES])
def test_malformed_rater_names_are_refused(running_app, api, name):
    with writes_nothing(running_app):
        answer = api.predict(name, api_name="/claim_rater")
    assert set(answer) == {"error"}, answer
    assert any(word in answer["error"] for word in ("rater name", "characters", "NUL")), answer


@pytest.mark.parametrize("value", [123, ["alice"], {"name": "alice"}])
def test_a_name_that_is_not_text_is_refused(running_app, api, value):
    with writes_nothing(running_app):
        answer = api.predict(value, api_name="/claim_rater")
    assert "error" in answer, answer


def test_a_claimed_name_cannot_be_claimed_again_and_its_token_still_works(running_app, api, cast):
    with writes_nothing(running_app):
        answer = api.predict(cast.owner.name, api_name="/claim_rater")
    assert answer == {"error": f"the name {cast.owner.name!r} is taken by another rater; pick another one"}
    assert grades_of(api, cast.session, cast.qid, cast.owner) == {cast.doc: 3}


def _token_variants(cast: Cast) -> dict[str, tuple[str, str]]:
    return {
        "random token": (cast.owner.name, secrets.token_urlsafe(24)),
        "empty token": (cast.owner.name, ""),
        "another rater's token": (cast.owner.name, cast.member.token),
        "the token's prefix": (cast.owner.name, cast.owner.token[:16]),
        "the token with a space": (cast.owner.name, cast.owner.token + " "),
        "a 100,000-character token": (cast.owner.name, "t" * 100_000),
        "an unclaimed name": (f"ghost-{uuid.uuid4().hex[:6]}", cast.owner.token),
    }


TOKEN_CASES = [
    "random token",
    "empty token",
    "another rater's token",
    "the token's prefix",
    "the token with a space",
    "a 100,000-character token",
    "an unclaimed name",
]


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_grading_as_someone_else_is_refused(running_app, api, cast, case):
    rater, token = _token_variants(cast)[case]
    with writes_nothing(running_app):
        answer = api.predict(cast.session, cast.qid, cast.doc, "0", rater, token, api_name="/judging_submit")
    assert answer == {"error": f"{NO_MATCH}: claim a name with /claim_rater and send the token it returns"}
    assert grades_of(api, cast.session, cast.qid, cast.owner) == {cast.doc: 3}


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_rating_as_someone_else_is_refused(running_app, api, cast, case):
    rater, token = _token_variants(cast)[case]
    with writes_nothing(running_app):
        answer = api.predict("frog", "bm25", FROG, 1, 1.0, 2, "stamps", rater, token, "api", api_name="/rate")
    assert NO_MATCH in answer["error"], answer


@pytest.mark.parametrize(
    "endpoint", ["/judging_create_session", "/judging_join", "/judging_add_queries", "/judging_analysis"]
)
def test_every_judging_write_and_read_needs_a_token(running_app, api, cast, endpoint):
    args = {
        "/judging_create_session": ("stolen", "stamps", BOTH, 5),
        "/judging_join": (cast.join_code,),
        "/judging_add_queries": (cast.session, "dog"),
        "/judging_analysis": (cast.session, 2, None),
    }[endpoint]
    with writes_nothing(running_app):
        answer = api.predict(*args, cast.owner.name, "not-the-token-at-all", api_name=endpoint)
    assert NO_MATCH in answer["error"], answer


def test_a_page_without_an_identity_cannot_rename_itself_into_someone(running_app, cast):
    page = PageSession(running_app.url)
    with writes_nothing(running_app):
        answer = page.trigger("rater", "submit", [None, cast.owner.name])
    assert "This page has no rater identity yet" in answer.text()


def test_a_page_restored_with_a_wrong_token_gets_a_fresh_name_not_the_owners(running_app, cast):
    page = PageSession(running_app.url)
    restored = page.become(cast.owner.name, "guessed-" + secrets.token_urlsafe(16))
    assert restored.data[2].startswith("anon-") and cast.owner.name not in restored.text()


# ------------------------------------------------------------------------------------- authorisation


@pytest.mark.parametrize(
    ("endpoint", "args"),
    [
        ("/judging_pool", lambda c: (c.session, c.qid)),
        ("/judging_submit", lambda c: (c.session, c.qid, c.doc, "0")),
        ("/judging_analysis", lambda c: (c.session, 2, None)),
        ("/judging_exports", lambda c: (c.session, 2, None)),
        ("/judging_add_queries", lambda c: (c.session, "dog")),
    ],
)
def test_an_outsider_cannot_see_or_touch_a_session(running_app, api, cast, endpoint, args):
    with writes_nothing(running_app):
        answer = api.predict(*args(cast), *cast.outsider.creds, api_name=endpoint)
    assert answer["error"].startswith(f"session {cast.session!r} not found among your sessions"), answer
    assert cast.member.name not in answer["error"] and cast.owner.name not in answer["error"]


def test_the_session_list_holds_only_ones_own_sessions(api, cast):
    sessions = api.predict(*cast.outsider.creds, api_name="/judging_options")["sessions"]
    assert sessions == [cast.other_session]


def test_a_member_cannot_add_queries(running_app, api, cast):
    with writes_nothing(running_app):
        answer = api.predict(cast.session, "dog", *cast.member.creds, api_name="/judging_add_queries")
    assert answer == {"error": f"Only the session's owner, {cast.owner.name}, can add queries."}


def test_a_member_grades_only_their_own_row(running_app, api, cast):
    assert "judgment_id" in submit(api, cast.session, cast.qid, cast.doc, "0", cast.member)
    assert "judgment_id" in submit(api, cast.session, cast.qid, cast.doc, "x", cast.member)  # can't judge
    assert grades_of(api, cast.session, cast.qid, cast.owner) == {cast.doc: 3}
    assert grades_of(api, cast.session, cast.qid, cast.member) == {cast.doc: "x"}


def test_grading_the_same_query_in_ones_own_session_leaves_the_other_session_alone(api, cast):
    pool = api.predict(cast.other_session, cast.other_qid, *cast.outsider.creds, api_name="/judging_pool")
    assert cast.doc in [d["doc_id"] for d in pool["docs"]]  # same text, same retrievers: same pool
    assert "judgment_id" in submit(api, cast.other_session, cast.other_qid, cast.doc, "0", cast.outsider)
    assert grades_of(api, cast.session, cast.qid, cast.owner) == {cast.doc: 3}
    assert grades_of(api, cast.other_session, cast.other_qid, cast.outsider) == {cast.doc: 0}


def test_a_member_cannot_grade_into_a_session_they_have_not_joined(running_app, api, cast):
    with writes_nothing(running_app):
        answer = submit(api, cast.other_session, cast.other_qid, cast.doc, "2", cast.member)
    assert "not found among your sessions" in answer["error"]


@pytest.mark.parametrize("code", ["", "nope", "x" * 10_000, "' OR 1=1 --"])
def test_a_wrong_join_code_joins_nothing(running_app, api, cast, code):
    with writes_nothing(running_app):
        answer = api.predict(code, *cast.outsider.creds, api_name="/judging_join")
    assert "error" in answer and cast.session not in json.dumps(answer), answer


# The page's own events, called over the queue the way the page calls them (marked private, still callable).


def test_private_delete_by_a_member_is_refused(running_app, cast):
    page = PageSession(running_app.url)
    page.become(*cast.member.creds)
    with writes_nothing(running_app):
        answer = page.trigger("judge-delete", "click", [None, cast.session, True])
    assert f"Only the session&#x27;s owner, {cast.owner.name}, can delete it." in answer.text()


def test_private_add_queries_by_a_member_is_refused(running_app, cast):
    page = PageSession(running_app.url)
    page.become(*cast.member.creds)
    with writes_nothing(running_app):
        answer = page.trigger("judge-add", "click", [None, cast.session, "dog\nbird", None, None])
    assert "can add queries" in answer.text()


def _qrels_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    qrels, queries = folder / "stolen.qrels", folder / "stolen.tsv"
    qrels.write_text(f"q1 0 {FROG} 0\n")
    queries.write_text("q1\tcat\n")
    return qrels, queries


def test_private_import_by_a_member_is_refused(running_app, cast, tmp_path):
    page = PageSession(running_app.url)
    page.become(*cast.member.creds)
    page.open_analysis_tab()
    qrels, queries = _qrels_files(tmp_path)
    values = [None, cast.session, page.upload(qrels), page.upload(queries), "stolen"]
    with writes_nothing(running_app):
        answer = page.trigger("import-run", "click", values)
    assert "can import judgments" in answer.text()


def test_private_import_from_a_page_without_identity_is_refused(running_app, cast, tmp_path):
    page = PageSession(running_app.url)
    qrels, queries = _qrels_files(tmp_path)
    values = [None, cast.session, page.upload(qrels), page.upload(queries), "stolen"]
    with writes_nothing(running_app):
        answer = page.trigger("import-run", "click", values)
    # the session is not in this page's list, so Gradio refuses it before the handler; either way, nothing
    assert not answer.success or "⚠️" in answer.text(), answer


@pytest.mark.parametrize(
    ("elem_id", "event", "values", "message"),
    [
        ("judge-create", "click", [None, "mine", "stamps", BOTH, 5], "to create a session"),
        ("judge-join", "click", [None, "any-code"], "to join a session"),
        ("analysis-export", "click", [None, None, 2, []], ""),
        ("analysis-run", "click", [None, None, 2, []], ""),
    ],
)
def test_private_events_from_a_page_without_identity_write_nothing(running_app, elem_id, event, values, message):
    page = PageSession(running_app.url)
    with writes_nothing(running_app):
        answer = page.trigger(elem_id, event, values)
    assert message in answer.text()


def test_an_outsiders_page_cannot_export_a_session_it_does_not_hold(running_app, cast):
    page = PageSession(running_app.url)
    page.become(*cast.outsider.creds)
    page.open_analysis_tab()
    answer = page.trigger("analysis-export", "click", [None, cast.session, 2, []])
    assert not answer.success and "not in the list of choices" in answer.error, answer


def test_a_pool_never_says_where_an_uploaded_query_image_is_kept(running_app, api, cast):
    page = PageSession(running_app.url)
    page.become(*cast.owner.creds)
    answer = page.trigger("judge-add", "click", [None, cast.session, "", None, [page.upload(STAMP)]])
    assert "Added 1 queries" in answer.text(), answer
    pool_answers = json.dumps(
        [api.predict(cast.session, f"q{n}", *cast.member.creds, api_name="/judging_pool") for n in (1, 2, 3)]
    )
    kept_at = [str(running_app.data_dir), "uploads"]
    assert '"image_query": true' in pool_answers
    assert not any(part in pool_answers for part in kept_at), pool_answers
