"""`mmr sessions` lists sessions with their owners and join codes, and hands one to a new owner."""

from __future__ import annotations

from typer.testing import CliRunner

from mmr.cli import app
from mmr.store import RatingStore


def test_sessions_lists_owners_and_gives_a_session_to_a_new_owner(tmp_path, monkeypatch):
    monkeypatch.setenv("MMR_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MMR_DB", raising=False)
    store = RatingStore(tmp_path / "ratings.sqlite").judgments
    store.create_session("pilot", "stamps", ["bm25", "lsr"], 5, "seed", None)  # as sessions from before owners
    runner = CliRunner()
    listed = runner.invoke(app, ["sessions"])
    code = store.session("pilot").join_code
    assert listed.exit_code == 0
    assert f"pilot: owner (none: made before owners), 0 members, 0 queries, join code {code}" in listed.output
    given = runner.invoke(app, ["sessions", "--give", "pilot", "hf:alice"])
    assert "hf:alice owns 'pilot' now" in given.output
    assert store.session("pilot").owner == "hf:alice" and store.is_member(store.session("pilot").id, "hf:alice")
    missing = runner.invoke(app, ["sessions", "--give", "nope", "hf:alice"])
    assert missing.exit_code == 1 and "no session named 'nope'" in missing.output
