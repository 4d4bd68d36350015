"""Judging through the API: eight raters grading at once while the app restarts (every judgment lands
exactly once), and the analysis endpoint agreeing with the exported files and with the test's own sums."""

from __future__ import annotations

import sqlite3
import threading
import time

import ir_measures
import pytest
from gradio_client import Client
from ir_measures import RR, P, nDCG

pytestmark = [pytest.mark.app, pytest.mark.slow]

RATERS = 8
PER_RATER = 200
SESSION = "concurrency"
# Short common words: with two retrievers and k=10 each pool holds 10 to 20 documents.
QUERIES = [
    "cat",
    "dog",
    "flower",
    "car",
    "bird",
    "tree",
    "house",
    "sun",
    "moon",
    "star",
    "fish",
    "boat",
    "train",
    "apple",
    "heart",
    "snow",
    "horse",
    "ball",
    "hat",
    "music",
    "book",
    "money",
    "face",
    "fire",
]
RETRY_FOR_S = 300  # a restart loads every model again; on a busy machine that takes a while


def _grade(rater: int, index: int) -> str:
    return "x" if index % 17 == 0 else str((index + rater) % 4)


class Rater(threading.Thread):
    """Submits its judgments in order; on a connection error it reconnects and sends the same one again."""

    def __init__(self, number: int, url: str, items: list[tuple[str, str]], progress: list[int], join_code: str):
        super().__init__(daemon=True)
        self.number, self.url, self.items, self.progress = number, url, items, progress
        client = Client(url, verbose=False)
        self.name = f"rater-{number}"
        self.token = client.predict(self.name, api_name="/claim_rater")["token"]
        assert client.predict(join_code, self.name, self.token, api_name="/judging_join") == {"session": SESSION}
        self.errors: list[str] = []
        self.retries = 0

    def run(self) -> None:
        client = None
        for index, (qid, doc_id) in enumerate(self.items):
            deadline = time.monotonic() + RETRY_FOR_S
            while True:
                try:
                    client = client or Client(self.url, verbose=False)
                    answer = client.predict(
                        SESSION,
                        qid,
                        doc_id,
                        _grade(self.number, index),
                        self.name,
                        self.token,
                        api_name="/judging_submit",
                    )
                    break
                except Exception:  # connection refused, reset, half-sent: all mean "send it again"
                    if time.monotonic() > deadline:
                        self.errors.append(f"gave up on {qid} {doc_id}")
                        return
                    self.retries += 1
                    client = None
                    time.sleep(0.5)
            if "error" in answer:
                self.errors.append(answer["error"])
            self.progress[self.number] = index + 1


def _owner(client: Client, name: str) -> tuple[str, str]:
    return name, client.predict(name, api_name="/claim_rater")["token"]


def _pooled_items(client: Client) -> tuple[list[tuple[str, str]], str]:
    """The first PER_RATER pooled (qid, doc) pairs of a new session, and its join code."""
    owner = _owner(client, "concurrency-owner")
    retrievers = client.predict(*owner, api_name="/judging_options")["collections"]["stamps"][:2]
    created = client.predict(SESSION, "stamps", retrievers, 10, *owner, api_name="/judging_create_session")
    assert "error" not in created, created
    added = client.predict(SESSION, "\n".join(QUERIES), *owner, api_name="/judging_add_queries")["added"]
    items = []
    for query in added:
        pool = client.predict(SESSION, query["qid"], *owner, api_name="/judging_pool")
        items += [(query["qid"], doc["doc_id"]) for doc in pool["docs"]]
    assert len(items) >= PER_RATER
    return items[:PER_RATER], created["join_code"]


def _stored(db_path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT sq.qid, j.doc_id, j.rater, j.grade FROM judgments j "
            "JOIN session_queries sq ON sq.query_id = j.query_id AND sq.session_id = j.session_id "
            "JOIN judging_sessions s ON s.id = sq.session_id WHERE s.name = ?",
            (SESSION,),
        ).fetchall()
        in_session = conn.execute(
            "SELECT COUNT(*) FROM judgments j JOIN judging_sessions s ON s.id = j.session_id WHERE s.name = ?",
            (SESSION,),
        ).fetchone()[0]
        assert in_session == len(rows)
    return [(qid, doc, rater, "x" if grade is None else str(grade)) for qid, doc, rater, grade in rows]


def test_eight_raters_and_a_restart_store_every_judgment_once(running_app):
    started = time.monotonic()
    items, join_code = _pooled_items(Client(running_app.url, verbose=False))
    print(f"pooled {len(QUERIES)} queries in {time.monotonic() - started:.0f}s")
    progress = [0] * RATERS
    raters = [Rater(n, running_app.url, items, progress, join_code) for n in range(RATERS)]
    for rater in raters:
        rater.start()
    deadline = time.monotonic() + RETRY_FOR_S
    while sum(progress) < RATERS * PER_RATER // 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    done_before_restart = sum(progress)
    # running_app.restart() with a longer wait: loading every model again takes minutes on a busy machine.
    started = time.monotonic()
    running_app.stop()
    running_app.start(timeout=RETRY_FOR_S)
    print(f"{done_before_restart} judgments before the restart, which took {time.monotonic() - started:.0f}s")
    for rater in raters:
        rater.join(timeout=RETRY_FOR_S * 2)
    print(f"all judgments sent {time.monotonic() - started:.0f}s after pooling began")
    assert not [e for r in raters for e in r.errors]
    assert 0 < done_before_restart < RATERS * PER_RATER, "the restart happened while raters were busy"
    assert sum(r.retries for r in raters) > 0, "some request met the restart"

    stored = _stored(running_app.db_path)
    expected = {(qid, doc, f"rater-{n}", _grade(n, i)) for n in range(RATERS) for i, (qid, doc) in enumerate(items)}
    assert len(stored) == RATERS * PER_RATER == 1600
    assert len({row[:3] for row in stored}) == len(stored)  # none twice
    assert set(stored) == expected  # and each with the grade its rater sent


def test_api_analysis_matches_exports_and_hand_counts(running_app):
    client = Client(running_app.url, verbose=False)
    ann, bob = _owner(client, "ann-api"), _owner(client, "bob-api")
    retrievers = client.predict(*ann, api_name="/judging_options")["collections"]["stamps"][:3]
    created = client.predict("api", "stamps", retrievers, 4, *ann, api_name="/judging_create_session")
    client.predict(created["join_code"], *bob, api_name="/judging_join")
    queries = "a red flower in a pot\nb7\tan old racing car\nsome gold coins"
    added = client.predict("api", queries, *ann, api_name="/judging_add_queries")["added"]
    assert [q["qid"] for q in added] == ["q1", "b7", "q3"]
    grades = {}
    for query in added:
        pool = client.predict("api", query["qid"], *ann, api_name="/judging_pool")
        assert not any(name in str(pool) for name in retrievers)  # blind: no retriever names anywhere
        for i, doc in enumerate(pool["docs"]):
            for rater, grade in ((ann, i % 4), (bob, (i + i // 3) % 4)):
                answer = client.predict(
                    "api", query["qid"], doc["doc_id"], str(grade), *rater, api_name="/judging_submit"
                )
                assert "judgment_id" in answer, answer
                grades[(query["qid"], doc["doc_id"], rater[0])] = grade
    assert "error" in client.predict("api", "q1", "no/such/doc", "2", *ann, api_name="/judging_submit")

    analysis = client.predict("api", 2, [], *bob, api_name="/judging_analysis")  # default: the people, both
    exports = client.predict("api", 2, [], *bob, api_name="/judging_exports")
    qrels = list(ir_measures.read_trec_qrels(exports["qrels"]))
    for name in retrievers:
        run = list(ir_measures.read_trec_run(exports["runs"][name]))
        means = ir_measures.calc_aggregate([P(rel=2) @ 4, nDCG @ 4, RR(rel=2) @ 4], qrels, run)
        assert means[P(rel=2) @ 4] == pytest.approx(analysis["means"][name]["P@4"])
        assert means[nDCG @ 4] == pytest.approx(analysis["means"][name]["nDCG@4"])
        assert means[RR(rel=2) @ 4] == pytest.approx(analysis["means"][name]["MRR@4"])
    # Two raters: one qrel per document is the lower of their two grades; kappa on all the docs.
    docs = sorted({(q, d) for q, d, _ in grades})
    assert {(q.query_id, q.doc_id): q.relevance for q in qrels} == {
        (q, d): min(grades[(q, d, "ann-api")], grades[(q, d, "bob-api")]) for q, d in docs
    }
    a, b = [grades[(q, d, "ann-api")] for q, d in docs], [grades[(q, d, "bob-api")] for q, d in docs]
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / len(docs)
    expected = sum(a.count(c) * b.count(c) for c in range(4)) / len(docs) ** 2
    assert analysis["agreement"]["items"] == len(docs)
    assert analysis["agreement"]["kappa"] == pytest.approx((observed - expected) / (1 - expected))
