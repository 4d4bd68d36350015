"""What the attack tests share: a cast of raters and sessions made through the public API, and a check
that a refused request left every table of the database as it was."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from gradio_client import Client

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


def build_cast(api: Client) -> Cast:
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
