"""The running app attacked through its public doors only: gradio_client, raw JSON to the API, and raw
queue requests to the page's private events (tests/app/raw_gradio.py). Every refusal is checked for its
message and for the database being exactly as it was: not one row more in any table.

Groups: identity (names, tokens), authorisation (owners, members, outsiders; the page's private events),
limits (every value of /rate, /search_json and the judging endpoints), malformed images, file serving,
and a kill -9 (ratings, tokens and memberships are all there after it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image, PngImagePlugin

from mmr.config import Settings
from tests.app.raw_gradio import PageSession, call_api, status_of
from tests.app.search_helpers import STAMP, SearchView

pytestmark = pytest.mark.app

TABLES = (
    "raters",
    "queries",
    "ratings",
    "judging_sessions",
    "session_members",
    "import_sources",
    "session_queries",
    "shown_documents",
    "judgments",
)
FROG = "stamp/animals/amphibians/frog"
BOTH = ["bm25", "zeroshot-verbal"]
NO_MATCH = "rater and token do not match"


def counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as connection:
        return {t: connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608


@contextlib.contextmanager
def writes_nothing(running_app):
    before = counts(running_app.db_path)
    yield
    assert counts(running_app.db_path) == before, "a refused request wrote to the database"


@dataclass
class Rater:
    name: str
    token: str

    @property
    def creds(self) -> tuple[str, str]:
        return self.name, self.token


@dataclass
class Cast:
    """A session owned by ``owner``, joined by ``member``; ``outsider`` owns a session of their own with
    the same first query. The owner graded the first pool document 3, the member 1."""

    owner: Rater
    member: Rater
    outsider: Rater
    session: str
    join_code: str
    qid: str
    doc: str
    other_session: str
    other_qid: str


@pytest.fixture(scope="module")
def api(running_app) -> Client:
    return Client(running_app.url, verbose=False)


def claim(api: Client, prefix: str) -> Rater:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    answer = api.predict(name, api_name="/claim_rater")
    assert answer.get("rater") == name, answer
    return Rater(name, answer["token"])


def make_session(api: Client, owner: Rater, queries: str) -> tuple[dict, list[dict]]:
    name = f"adv-{uuid.uuid4().hex[:6]}"
    created = api.predict(name, "stamps", BOTH, 5, *owner.creds, api_name="/judging_create_session")
    assert "error" not in created, created
    added = api.predict(name, queries, *owner.creds, api_name="/judging_add_queries")
    assert "error" not in added, added
    return created, added["added"]


def submit(api: Client, session: str, qid: str, doc: str, grade: str, rater: Rater) -> dict:
    return api.predict(session, qid, doc, grade, *rater.creds, api_name="/judging_submit")


def grades_of(api: Client, session: str, qid: str, rater: Rater) -> dict:
    return api.predict(session, qid, *rater.creds, api_name="/judging_pool")["grades"]


@pytest.fixture(scope="module")
def cast(api) -> Cast:
    owner, member, outsider = claim(api, "owner"), claim(api, "member"), claim(api, "outsider")
    created, added = make_session(api, owner, "cat\nfrog")
    assert api.predict(created["join_code"], *member.creds, api_name="/judging_join") == {"session": created["session"]}
    qid = added[0]["qid"]
    doc = api.predict(created["session"], qid, *owner.creds, api_name="/judging_pool")["docs"][0]["doc_id"]
    assert "judgment_id" in submit(api, created["session"], qid, doc, "3", owner)
    assert "judgment_id" in submit(api, created["session"], qid, doc, "1", member)
    other, other_added = make_session(api, outsider, "cat")
    return Cast(
        owner, member, outsider, created["session"], created["join_code"], qid, doc, other["session"],
        other_added[0]["qid"],
    )  # fmt: skip


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


# ---------------------------------------------------------------------------------------------- limits

RATE_OK = {
    "query_text": "frog",
    "retriever": "bm25",
    "doc_id": FROG,
    "rank": 1,
    "score": 1.5,
    "grade": 2,
    "collection": "stamps",
    "session_id": "api",
}
RATE_ORDER = ["query_text", "retriever", "doc_id", "rank", "score", "grade", "collection"]
RATE_LIMITS = [
    ("query_text", "x" * 2001, "query_text has 2,001 characters; the limit is 2,000"),
    ("query_text", "x" * 100_000, "query_text has 100,000 characters"),
    ("query_text", "x" * 10_000_000, "query_text has 10,000,000 characters"),
    ("query_text", "", "query_text is empty"),
    ("query_text", "nul\x00", "query_text contains a NUL character"),
    ("query_text", 5, "query_text must be text"),
    ("retriever", "not-a-retriever", "is not loaded on stamps"),
    ("retriever", ["bm25"], "is not loaded on stamps"),
    ("doc_id", "stamp/nothing/here", "is not in collection 'stamps'"),
    ("doc_id", "d" * 100_000, "is not in collection 'stamps'"),
    ("rank", 1e20, "rank must be from 1 to 1000, got 100000000000000000000"),
    ("rank", 0, "rank must be from 1 to 1000, got 0"),
    ("rank", -1, "rank must be from 1 to 1000, got -1"),
    ("rank", 1001, "rank must be from 1 to 1000, got 1001"),
    ("rank", True, "rank must be a whole number"),
    ("rank", 2.5, "rank must be a whole number"),
    ("score", "abc", "score must be a finite number"),
    ("score", None, "score must be a finite number"),
    ("grade", 2.5, "grade must be a whole number from 0 to 3"),
    ("grade", 4, "grade must be from 0 to 3, got 4"),
    ("grade", -1, "grade must be from 0 to 3, got -1"),
    ("grade", True, "grade must be a whole number"),
    ("grade", None, "grade must be a whole number"),
    ("collection", "nope", "unknown collection 'nope'"),
    ("collection", 7, "unknown collection '7'"),
    ("session_id", "s" * 1000, "session_id has 1,000 characters"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"), RATE_LIMITS, ids=[f"{f}={str(v)[:12]!r}" for f, v, _ in RATE_LIMITS]
)
def test_rate_refuses_every_value_out_of_bounds(running_app, api, cast, field, value, message):
    values = {**RATE_OK, field: value}
    args = [values[name] for name in RATE_ORDER]
    with writes_nothing(running_app):
        answer = api.predict(*args, *cast.owner.creds, values["session_id"], api_name="/rate")
    assert message in answer.get("error", ""), answer


@pytest.mark.parametrize("score", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_rate_refuses_scores_that_json_clients_would_never_send(running_app, cast, score):
    values = {**RATE_OK}
    data = [values[name] for name in RATE_ORDER] + [*cast.owner.creds, "api"]
    body = json.dumps({"data": data}).replace("1.5", score)
    with writes_nothing(running_app):
        answer = call_api(running_app.url, "rate", body)
    assert answer == [{"error": "score must be a finite number"}], answer


SURROGATE = "lone \ud800 surrogate"  # valid JSON ("\\ud800"), not valid text: a client library will not send it


@pytest.mark.parametrize(
    ("api_name", "data", "message"),
    [
        ("claim_rater", [SURROGATE], "the rater name contains characters that are not valid Unicode text"),
        ("search_json", [SURROGATE, "stamps", BOTH, 5], "The query contains characters that are not valid Unicode"),
        ("judging_create_session", [SURROGATE, "stamps", BOTH, 5], "contains characters that are not valid Unicode"),
        ("judging_add_queries", ["<session>", SURROGATE], "query 1 contains characters that are not valid Unicode"),
        ("rate", ["<rate>"], "query_text contains characters that are not valid Unicode text"),
    ],
)
def test_lone_surrogates_are_refused_by_every_text_input(running_app, cast, api_name, data, message):
    if data == ["<rate>"]:
        data = [SURROGATE, *[RATE_OK[name] for name in RATE_ORDER[1:]], *cast.owner.creds, "api"]
    elif api_name.startswith("judging"):
        data = [cast.session if v == "<session>" else v for v in data] + list(cast.owner.creds)
    with writes_nothing(running_app):
        answer = call_api(running_app.url, api_name, json.dumps({"data": data}))
    assert message in answer[0].get("error", ""), answer


def test_rate_with_too_few_values_is_refused_without_a_trace(running_app):
    with writes_nothing(running_app):
        answer = call_api(running_app.url, "rate", '{"data": ["frog"]}')
    assert isinstance(answer, str) and answer.startswith("error event"), answer
    assert "Traceback" not in answer and "site-packages" not in answer


def test_a_valid_rating_still_goes_through(running_app, api, cast):
    before = counts(running_app.db_path)["ratings"]
    args = [RATE_OK[name] for name in RATE_ORDER]
    answer = api.predict(*args, *cast.owner.creds, "api", api_name="/rate")
    assert isinstance(answer.get("rating_id"), int), answer
    assert counts(running_app.db_path)["ratings"] == before + 1


SEARCH_LIMITS = [
    ({"retrievers": [f"r{i}" for i in range(7)]}, "pick at most 6 retrievers; 7 were given"),
    ({"retrievers": {"bm25": 1}}, "retrievers must be a list of names"),
    ({"retrievers": ["x" * 65]}, "a retriever name has 65 characters"),
    ({"k": "abc"}, "k must be a whole number from 1 to 100, got 'abc'"),
    ({"k": 0}, "k must be from 1 to 100, got 0"),
    ({"k": 101}, "k must be from 1 to 100, got 101"),
    ({"k": True}, "k must be a whole number"),
    ({"k": 2.5}, "k must be a whole number"),
    ({"text": "nul\x00"}, "NUL character"),
    ({"collection": ["stamps"]}, "unknown collection"),
    ({"collection": "../index_store"}, "unknown collection"),
]


@pytest.mark.parametrize(("change", "message"), SEARCH_LIMITS, ids=[str(c)[:30] for c, _ in SEARCH_LIMITS])
def test_search_json_refuses_values_out_of_bounds(running_app, api, change, message):
    values = {"text": "frog", "collection": "stamps", "retrievers": BOTH, "k": 5, **change}
    with writes_nothing(running_app):
        answer = api.predict(
            values["text"], values["collection"], values["retrievers"], values["k"], api_name="/search_json"
        )
    assert message in answer.get("error", ""), answer


def test_search_json_searches_a_repeated_retriever_once(api):
    answer = api.predict("frog", "stamps", ["bm25"] * 200, 3, api_name="/search_json")
    assert [r["retriever"] for r in answer["results"]] == ["bm25"]


def test_search_json_cuts_a_long_query_and_says_so(api):
    answer = api.predict("frog " * 1000, "stamps", ["bm25"], 3, api_name="/search_json")
    assert "error" not in answer and answer["notice"] and "2,000" in answer["notice"], answer
    assert len(answer["query_key"]) <= 2005


JUDGING_LIMITS = [
    (
        "/judging_add_queries",
        lambda c: (c.session, "\n".join(f"q {i}" for i in range(201))),
        "add at most 200 per call",
    ),
    ("/judging_add_queries", lambda c: (c.session, "x" * 2001), "query 1 has 2,001 characters"),
    ("/judging_add_queries", lambda c: (c.session, ["cat"]), "queries must be text"),
    ("/judging_create_session", lambda c: ("n" * 129, "stamps", BOTH, 5), "129 characters"),
    ("/judging_create_session", lambda c: ("k11", "stamps", BOTH, 11), "k must be from 1 to 10, got 11"),
    ("/judging_create_session", lambda c: ("kabc", "stamps", BOTH, "abc"), "k must be a whole number"),
    ("/judging_create_session", lambda c: ("one", "stamps", ["bm25"], 5), "Pick 2 to 6 retrievers (got 1)"),
    ("/judging_create_session", lambda c: ("seven", "stamps", [f"r{i}" for i in range(7)], 5), "not available"),
    ("/judging_create_session", lambda c: ("coll", "../../etc", BOTH, 5), "collection '../../etc' not found"),
    ("/judging_submit", lambda c: (c.session, c.qid, c.doc, "5"), "grade"),
    ("/judging_submit", lambda c: (c.session, c.qid, c.doc, "2.5"), "grade"),
    ("/judging_submit", lambda c: (c.session, c.qid, "not/in/pool", "2"), "is not in the pool"),
    ("/judging_submit", lambda c: (c.session, "q999", c.doc, "2"), "is not in session"),
    ("/judging_analysis", lambda c: (c.session, 4, None), "rel must be from 1 to 3, got 4"),
    ("/judging_exports", lambda c: (c.session, "abc", None), "rel must be a whole number"),
]


@pytest.mark.parametrize(
    ("endpoint", "args", "message"),
    JUDGING_LIMITS,
    ids=[f"{e}-{m[:20]}" for e, _, m in JUDGING_LIMITS],
)
def test_judging_refuses_values_out_of_bounds(running_app, api, cast, endpoint, args, message):
    with writes_nothing(running_app):
        answer = api.predict(*args(cast), *cast.owner.creds, api_name=endpoint)
    assert message in answer.get("error", ""), answer


# ------------------------------------------------------------------------------------ malformed images


def _text_bomb(path: Path, chunk: str) -> Path:
    info = PngImagePlugin.PngInfo()
    text = "A" * (64 * 2**20)  # 64 MB of text that compresses to some 64 KB
    if chunk == "zTXt":
        info.add_text("comment", text, zip=True)
    else:
        info.add_itxt("comment", text, zip=True)
    Image.open(STAMP).save(path, pnginfo=info)
    return path


def _malformed(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}.png"
    if kind in ("zTXt-bomb", "iTXt-bomb"):
        return _text_bomb(path, kind[:4])
    if kind == "6000x6000-1bit":
        Image.new("1", (6000, 6000)).save(path, optimize=True)  # some 15 KB on disk, 36 Mpixel
    elif kind == "svg-with-script":
        path.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    elif kind == "truncated-jpeg":
        jpeg = folder / "whole.jpg"
        Image.open(STAMP).convert("RGB").save(jpeg, format="JPEG")
        path.write_bytes(jpeg.read_bytes()[:300])
    elif kind == "png-header-only":
        path.write_bytes(STAMP.read_bytes()[:33])
    return path


MALFORMED = {
    "zTXt-bomb": "The image carries more embedded text than allowed",
    "iTXt-bomb": "The image carries more embedded text than allowed",
    "6000x6000-1bit": "over the 16,000,000-pixel limit",
    "svg-with-script": "not an image that can be read",
    "truncated-jpeg": "The image file is damaged and cannot be read",
    "png-header-only": "not an image that can be read",
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_images_get_a_message_and_write_nothing(running_app, api, tmp_path, kind):
    bad = _malformed(kind, tmp_path)
    with writes_nothing(running_app):
        outputs = api.predict("", handle_file(str(bad)), "stamps", BOTH, "all", api_name="/search")
    view = SearchView.parse(outputs)
    assert view.status.startswith("⚠️") and MALFORMED[kind] in view.status, view.status
    after = SearchView.parse(api.predict("a frog", None, "stamps", BOTH, "all", api_name="/search"))
    assert after.status.startswith("Searched"), after.status


# --------------------------------------------------------------------------------------- file serving


def _served(running_app, path: str) -> int:
    return status_of(running_app.url + "gradio_api/file=" + urllib.parse.quote(path, safe="/"))


def _private_files(running_app) -> dict[str, str]:
    settings = Settings()
    store = settings.index_store
    uploads = sorted((running_app.data_dir / "uploads").rglob("*.png"))
    return {
        "the database": str(running_app.db_path),
        "an uploaded query image": str(uploads[0]) if uploads else str(running_app.data_dir / "uploads"),
        "a test qrels file": str(next(store.rglob("test.qrels"))),
        "a faiss index": str(next((store / "indexes").rglob("*.faiss"))),
        "a corpus": str(settings.corpora_dir / "stamps.jsonl"),
        "app.py": str(Path("app.py").resolve()),
        "/etc/passwd": "/etc/passwd",
        "traversal out of media": str(settings.media_dir / ".." / "corpora" / "stamps.jsonl"),
        "relative traversal": "../../../../etc/passwd",
        "the app's log": str(running_app.log_path),
    }


PRIVATE = [
    "the database",
    "an uploaded query image",
    "a test qrels file",
    "a faiss index",
    "a corpus",
    "app.py",
    "/etc/passwd",
    "traversal out of media",
    "relative traversal",
    "the app's log",
]


@pytest.mark.parametrize("what", PRIVATE)
def test_files_a_page_does_not_show_are_not_served(running_app, api, cast, what):
    path = _private_files(running_app)[what]
    assert _served(running_app, path) in (403, 404), f"{what} ({path}) was served"


def test_uploads_are_not_served_under_a_name_guessable_from_their_content(running_app, api, cast):
    api.predict("", handle_file(str(STAMP)), "stamps", BOTH, "all", api_name="/search")
    cache = running_app.data_dir / "gradio-tmp"  # the app's GRADIO_TEMP_DIR (tests/app/conftest.py)
    assert any(p.read_bytes() == STAMP.read_bytes() for p in cache.rglob(STAMP.name)), "the upload is not there"
    for data in (STAMP.read_bytes(), Image.open(STAMP).tobytes()):
        digest = hashlib.sha256(data).hexdigest()
        for name in ("image.webp", "image.png", STAMP.name):
            assert _served(running_app, str(cache / digest / name)) in (403, 404)


def test_a_collection_image_is_served(running_app):
    assert _served(running_app, str(STAMP)) == 200


# ------------------------------------------------------------------------------------------- restarts


def test_kill_9_keeps_ratings_tokens_and_memberships(running_app, api, cast):
    query = f"frog {uuid.uuid4().hex[:6]}"
    args = [RATE_OK[name] for name in RATE_ORDER]
    args[0] = query
    ids = [api.predict(*args[:5], n % 4, "stamps", *cast.owner.creds, "api", api_name="/rate") for n in range(20)]
    assert all(isinstance(answer.get("rating_id"), int) for answer in ids), ids
    running_app.kill()
    running_app.start()
    api = Client(running_app.url, verbose=False)
    with sqlite3.connect(running_app.db_path) as connection:
        stored = connection.execute(
            "SELECT COUNT(*) FROM ratings r JOIN queries q ON q.id = r.query_id WHERE q.text = ?", (query,)
        ).fetchone()[0]
    assert stored == 20
    assert grades_of(api, cast.session, cast.qid, cast.owner) == {cast.doc: 3}  # the owner's token still works
    members = api.predict(cast.session, 2, None, *cast.member.creds, api_name="/judging_analysis")
    assert "error" not in members, members  # and the member is still a member
    again = api.predict(cast.owner.name, api_name="/claim_rater")
    assert "taken" in again["error"]
