"""The running app through gradio_client: searching, rating, bad input, and ratings surviving a restart."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from gradio_client import Client, handle_file

from mmr.config import Settings
from mmr.corpus.format import Corpus
from tests.app.search_helpers import SearchView, make_bad_files, make_oversized_file, read_ratings

pytestmark = pytest.mark.app

BOTH = ["bm25", "zeroshot-verbal"]


@pytest.fixture
def client(running_app) -> Client:
    return Client(running_app.url, verbose=False)


@pytest.fixture(scope="module")
def stamp_ids() -> set[str]:
    return {doc.id for doc in Corpus.from_jsonl(Settings().corpora_dir / "stamps.jsonl").documents}


def search(client: Client, text: str = "", image=None, collection="stamps", retrievers=BOTH, show="all") -> SearchView:
    return SearchView.parse(client.predict(text, image, collection, retrievers, show, api_name="/search"))


def assert_still_answers(client: Client) -> None:
    view = search(client, "a frog")
    assert view.status.startswith("Searched"), view.status
    assert all(view.cards[c] for c in range(2)), "a good query after bad input returned empty columns"


def test_search_json_returns_hits_from_each_chosen_retriever(client, stamp_ids):
    answer = client.predict("frog", "stamps", BOTH, 5, api_name="/search_json")
    assert "error" not in answer, answer
    assert [r["retriever"] for r in answer["results"]] == BOTH
    for result in answer["results"]:
        assert result["error"] is None
        assert 1 <= len(result["hits"]) <= 5
        assert [h["rank"] for h in result["hits"]] == list(range(1, len(result["hits"]) + 1))
        assert {h["doc_id"] for h in result["hits"]} <= stamp_ids
        scores = [h["score"] for h in result["hits"]]
        assert scores == sorted(scores, reverse=True)
    assert "frog" in answer["results"][0]["hits"][0]["doc_id"]  # BM25 on "frog" must find the frog stamps


def test_search_endpoint_returns_one_column_per_retriever(client):
    view = search(client, "frog")
    assert view.status == "Searched 949 documents for “frog” with 2 retrievers."
    assert len(view.shown_columns) == 2
    assert view.shown_columns[0].startswith("### BM25") and "Zero-shot" in view.shown_columns[1]
    assert "frog" in view.cards[0][0].lower() and view.cards[0][0].startswith("**#1**")
    # "frog" is found by both retrievers: the shared results carry a badge naming the other's rank
    assert any("also: Zero-shot verbalisation #" in card for card in view.cards[0])
    assert any("also: BM25 #" in card for card in view.cards[1])


def test_modality_filter_of_search_endpoint_keeps_only_that_modality(client):
    texts = search(client, "frog", collection="mixed", show="texts")
    assert texts.cards[0] and all("· text" in card for column in texts.cards for card in column)
    images = search(client, "frog", collection="mixed", show="images")
    assert images.cards[0] and all("· image" in card for column in images.cards for card in column)


def test_rating_is_stored_and_survives_a_restart(running_app, stamp_ids):
    client = Client(running_app.url, verbose=False)
    query = f"frog {uuid.uuid4().hex[:6]}"  # unique, so the row read back can only be this test's
    hit = client.predict(query, "stamps", ["zeroshot-verbal"], 3, api_name="/search_json")["results"][0]["hits"][1]
    rater = f"ann-{uuid.uuid4().hex[:6]}"
    token = client.predict(rater, api_name="/claim_rater")["token"]
    answer = client.predict(
        query, "zeroshot-verbal", hit["doc_id"], hit["rank"], hit["score"], 2, "stamps", rater, token, api_name="/rate"
    )
    assert isinstance(answer.get("rating_id"), int), answer
    refused = client.predict(
        query, "zeroshot-verbal", hit["doc_id"], 2, 0.5, 7, "stamps", rater, token, api_name="/rate"
    )
    assert "grade" in refused["error"]
    missing = client.predict(query, "bm25", "no/such/doc", 1, 0.5, 1, "stamps", rater, token, api_name="/rate")
    assert "no/such/doc" in missing["error"]

    running_app.restart()

    rows = [row for row in read_ratings(running_app.db_path) if row["query_text"] == query]
    assert rows == [
        {
            "query_key": f"text:{query}",
            "query_text": query,
            "image_sha": None,
            "collection": "stamps",
            "retriever": "zeroshot-verbal",
            "doc_id": hit["doc_id"],
            "rank": 2,
            "score": pytest.approx(hit["score"]),
            "grade": 2,
            "rater": rater,
            "session_id": "api",
        }
    ]
    assert_still_answers(Client(running_app.url, verbose=False))


def test_empty_query_asks_for_input(client):
    view = search(client, "   ")
    assert view.status == "⚠️ Type a query or add an image to search."
    assert view.shown_columns == []
    assert_still_answers(client)


def test_no_retriever_chosen_says_so(client):
    view = search(client, "frog", retrievers=[])
    assert view.status == "⚠️ Pick at least one retriever."
    assert_still_answers(client)


def test_very_long_query_is_shortened_with_a_notice(client):
    view = search(client, "frog " * 19_999 + "frogs")  # 100,000 characters
    assert "100,000 characters" in view.status and "first 2,000" in view.status
    assert view.cards[0], "the shortened query should still be searched"
    assert_still_answers(client)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "damaged or incomplete"),
        ("zero-byte", "The file is empty (0 bytes)."),
        ("not-an-image", "not an image that can be read"),
        ("decompression-bomb", "over the 16,000,000-pixel limit (this protects the server from decompression bombs)"),
    ],
)
def test_bad_upload_gets_a_clear_message_and_the_app_lives_on(client, tmp_path, kind, message):
    bad = make_bad_files(tmp_path)[kind]
    view = search(client, "", handle_file(str(bad)))
    assert view.status.startswith("⚠️") and message in view.status, view.status
    assert view.shown_columns == []
    assert_still_answers(client)


def test_upload_over_the_size_limit_is_refused_with_a_clear_message(running_app, client, tmp_path):
    huge = make_oversized_file(tmp_path)
    # gradio_client checks the app's max_file_size before sending anything...
    with pytest.raises(ValueError, match="exceeds the maximum file size of 10485760 bytes"):
        search(client, "", handle_file(str(huge)))
    # ...and a client that does not check is stopped by the server, with a readable reason.
    boundary = "mmrboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + huge.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{running_app.url}gradio_api/upload",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert "maximum allowed size" in refused.value.read().decode()
    assert_still_answers(client)
