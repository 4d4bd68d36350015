import pytest
from PIL import Image

from mmr.judging import JudgingError, parse_query_lines, read_query_file


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
    entries = judging.queries(session)
    assert [(e.position, e.qid, e.text) for e in entries] == [
        (1, "q1", "red flower"),
        (2, "t7", "old car"),
        (3, "q3", "a cat"),
    ]
    judging.add_text_queries(session, [(None, "red flower")])  # the same query again: not a new one
    assert len(judging.queries(session)) == 3
    with pytest.raises(JudgingError, match="t7"):
        judging.add_text_queries(session, [("t7", "another text")])


def test_image_query_is_pooled(judging, session, tmp_path):
    image = tmp_path / "query.png"
    Image.new("RGB", (16, 16), "blue").save(image)
    entry = judging.add_image_query(session, image)
    assert entry.query_key.startswith("image:") and entry.image_path
    view = judging.blind_query(session, entry.qid)
    assert view.image_path == entry.image_path and view.docs


def test_judge_checks_pool_grade_and_rater(judging, session):
    doc = judging.blind_query(session, "q1").docs[0].doc_id
    outside = next(
        d.id
        for d in judging.search.collections["fake"].documents
        if d.id not in {x.doc_id for x in judging.blind_query(session, "q1").docs}
    )
    with pytest.raises(JudgingError, match="not in the pool"):
        judging.judge(session, "q1", outside, "ann", 2)
    with pytest.raises(JudgingError, match="name"):
        judging.judge(session, "q1", doc, "  ", 2)
    with pytest.raises(JudgingError, match="import:"):
        judging.judge(session, "q1", doc, "import:x", 2)
    with pytest.raises(JudgingError, match="grade"):
        judging.judge(session, "q1", doc, "ann", 4)
    with pytest.raises(JudgingError, match="not found. Available"):
        judging.judge("nope", "q1", doc, "ann", 2)


def test_progress_counts_pooled_docs_and_complete_queries(judging, session):
    pools = {e.qid: judging.blind_query(session, e.qid).docs for e in judging.queries(session)}
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
