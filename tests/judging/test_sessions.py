import pytest
from PIL import Image

from mmr.judging import JudgingError, parse_query_lines, read_query_file
from tests.judging.fakes import RETRIEVER_NAMES


def test_query_lines_accept_tsv_and_plain_lines(tmp_path):
    text = "# a comment\nimg-000002\t100 Japanese yen.\n\n  a red flower  \n\t\nq9\tan old car\n"
    expected = [("img-000002", "100 Japanese yen."), (None, "a red flower"), ("q9", "an old car")]
    assert parse_query_lines(text) == expected
    path = tmp_path / "queries.tsv"
    path.write_text(text, encoding="utf-8")
    assert read_query_file(path) == expected
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(JudgingError, match="UTF-8"):
        read_query_file(path)


def test_queries_get_qids_positions_and_are_added_once(judging, session):
    entries = judging.queries(session, "ann")
    assert [(e.position, e.qid, e.text) for e in entries] == [
        (1, "q1", "red flower"),
        (2, "t7", "old car"),
        (3, "q3", "a cat"),
    ]
    judging.add_text_queries(session, [(None, "red flower")], "ann")  # the same query again: not a new one
    assert len(judging.queries(session, "ann")) == 3
    with pytest.raises(JudgingError, match="t7"):
        judging.add_text_queries(session, [("t7", "another text")], "ann")


def test_image_query_is_pooled(judging, session, tmp_path):
    image = tmp_path / "query.png"
    Image.new("RGB", (16, 16), "blue").save(image)
    entry = judging.add_image_query(session, image, "ann")
    assert entry.query_key.startswith("image:") and entry.image_path
    view = judging.blind_query(session, entry.qid, "ann")
    assert view.image_path == entry.image_path and view.docs


def test_judge_checks_pool_grade_and_rater(judging, session):
    doc = judging.blind_query(session, "q1", "ann").docs[0].doc_id
    outside = next(
        d.id
        for d in judging.search.collections["fake"].documents
        if d.id not in {x.doc_id for x in judging.blind_query(session, "q1", "ann").docs}
    )
    with pytest.raises(JudgingError, match="not in the pool"):
        judging.judge(session, "q1", outside, "ann", 2)
    with pytest.raises(JudgingError, match="Sign in"):
        judging.judge(session, "q1", doc, "", 2)
    with pytest.raises(JudgingError, match="grade"):
        judging.judge(session, "q1", doc, "ann", 4)
    with pytest.raises(JudgingError, match="not found among your sessions"):
        judging.judge("nope", "q1", doc, "ann", 2)
    assert judging.store.count() == 0


def test_outsiders_see_nothing_members_judge_owners_manage(judging, session):
    doc = judging.blind_query(session, "q1", "bob").docs[0].doc_id
    # eve is no member: the session does not exist for her, whatever she calls
    for call in (
        lambda: judging.blind_query(session, "q1", "eve"),
        lambda: judging.judge(session, "q1", doc, "eve", 2),
        lambda: judging.session_data(session, "eve"),
        lambda: judging.add_text_queries(session, [(None, "x")], "eve"),
        lambda: judging.grades(session, "q1", "eve"),
        lambda: judging.delete_session(session, "eve"),
    ):
        with pytest.raises(JudgingError, match="not found among your sessions"):
            call()
    assert judging.session_names("eve") == [] and judging.session_names("bob") == [session]
    # bob is a member: he judges and analyses, but the owner's actions are refused
    judging.judge(session, "q1", doc, "bob", 3)
    for call in (
        lambda: judging.add_text_queries(session, [(None, "x")], "bob"),
        lambda: judging.join_code(session, "bob"),
        lambda: judging.delete_session(session, "bob"),
    ):
        with pytest.raises(JudgingError, match="owner, ann"):
            call()
    # grades are the rater's own: ann grading the same doc writes her row, bob's stays
    judging.judge(session, "q1", doc, "ann", 0)
    assert judging.grades(session, "q1", "bob") == {doc: 3} and judging.grades(session, "q1", "ann") == {doc: 0}
    with pytest.raises(JudgingError, match="join code"):
        judging.join("wrong-code", "eve")
    judging.delete_session(session, "ann")
    assert judging.session_names("ann") == [] and judging.store.count() == 0


def test_the_same_query_in_another_session_is_judged_apart(judging, session):
    doc = judging.blind_query(session, "q1", "bob").docs[0].doc_id
    judging.judge(session, "q1", doc, "bob", 3)
    judging.create_session("eve's", "fake", list(RETRIEVER_NAMES), 5, "eve")
    judging.add_text_queries("eve's", [(None, "red flower")], "eve")
    judging.judge("eve's", "q1", doc, "eve", 0)
    assert [j.rater for j in judging.session_data(session, "ann").judgments] == ["bob"]
    assert [j.rater for j in judging.session_data("eve's", "eve").judgments] == ["eve"]


def test_limits_on_queries_per_call_and_session(judging, session, monkeypatch):
    import mmr.judging.sessions as sessions

    with pytest.raises(JudgingError, match="at most 200 per call"):
        judging.add_text_queries(session, [(None, f"q {i}") for i in range(201)], "ann")
    monkeypatch.setattr(sessions, "MAX_QUERIES_PER_SESSION", 4)
    with pytest.raises(JudgingError, match="at most 4 queries"):
        judging.add_text_queries(session, [(None, "one"), (None, "two")], "ann")
    assert len(judging.queries(session, "ann")) == 3


def test_a_judged_query_is_kept_as_typed_or_refused_whole(judging, session):
    before = len(judging.queries(session, "ann"))
    with pytest.raises(JudgingError, match="query 2 has 2,001 characters; the limit is 2,000; nothing was added"):
        judging.add_text_queries(session, [(None, "fine"), (None, "x" * 2001)], "ann")
    with pytest.raises(JudgingError, match="query 1 contains characters that are not valid Unicode"):
        judging.add_text_queries(session, [(None, "lone \ud800")], "ann")
    assert len(judging.queries(session, "ann")) == before


def test_progress_counts_pooled_docs_and_complete_queries(judging, session):
    pools = {e.qid: judging.blind_query(session, e.qid, "ann").docs for e in judging.queries(session, "ann")}
    total = sum(len(docs) for docs in pools.values())
    assert judging.progress(session, "ann").docs == total
    for doc in pools["q1"]:
        judging.judge(session, "q1", doc.doc_id, "ann", None if doc.position == 1 else 1)  # "can't judge" counts
    judging.judge(session, "t7", pools["t7"][0].doc_id, "ann", 3)
    judging.judge(session, "t7", pools["t7"][0].doc_id, "ann", 0)  # re-grading is not progress
    progress = judging.progress(session, "ann")
    assert (progress.queries, progress.queries_done, progress.docs_judged) == (3, 1, len(pools["q1"]) + 1)
    assert judging.progress(session, "bob").docs_judged == 0
    assert judging.grades(session, "t7", "ann") == {pools["t7"][0].doc_id: 0}
