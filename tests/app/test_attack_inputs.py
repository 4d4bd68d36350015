"""Bad values, bad images, files that must not be served, and a kill -9, through the public doors only:
gradio_client and raw JSON to the API (so NaN and lone surrogates get through to the server). Every
refusal is checked for its message and for the database being exactly as it was."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.parse
import uuid
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image, PngImagePlugin

from mmr.config import Settings
from tests.app.attack_cast import (
    BOTH,
    FROG,
    counts,
    grades_of,
    writes_nothing,
)
from tests.app.raw_gradio import call_api, status_of
from tests.app.search_helpers import STAMP, SearchView

pytestmark = pytest.mark.app

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
