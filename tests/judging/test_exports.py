import csv
import io
import random

import ir_measures
import pytest
import pytrec_eval
from ir_measures import RR, P, nDCG

from mmr.config import Settings
from mmr.corpus.splits import read_qrels, read_queries
from mmr.judging import JudgingError, analyse, import_qrels
from mmr.judging.exports import write_exports

BENCHMARK = Settings().benchmark_dir / "v1" / "images"


def _judge_everything(judging, session, raters=("ann", "bob"), seed=3):
    rng = random.Random(seed)
    for entry in judging.queries(session, "ann"):
        for doc in judging.blind_query(session, entry.qid, "ann").docs:
            for rater in raters:
                if rng.random() < 0.8:
                    judging.judge(session, entry.qid, doc.doc_id, rater, rng.choice([0, 1, 2, 3, 3, None]))


@pytest.mark.parametrize("rel", [1, 2])
def test_exported_files_evaluate_to_the_analysis_numbers(judging, session, tmp_path, rel):
    _judge_everything(judging, session)
    data = judging.session_data(session, "ann")
    result = analyse(data, rel=rel)
    paths = {p.name: p for p in write_exports(data, result, tmp_path / "out")}
    qrels = list(ir_measures.read_trec_qrels(str(paths["s1.qrels"])))
    measures = [P(rel=rel) @ 5, nDCG @ 5, RR(rel=rel) @ 5]
    trec_qrels = {}
    for q in qrels:
        trec_qrels.setdefault(q.query_id, {})[q.doc_id] = q.relevance
    for retriever in data.retrievers:
        run = list(ir_measures.read_trec_run(str(paths[f"s1.{retriever}.run"])))
        scores = ir_measures.calc_aggregate(measures, qrels, run)
        shown = result.means[retriever]
        assert scores[P(rel=rel) @ 5] == pytest.approx(shown["P@5"])
        assert scores[nDCG @ 5] == pytest.approx(shown["nDCG@5"])
        assert scores[RR(rel=rel) @ 5] == pytest.approx(shown["MRR@5"])
        # pytrec_eval directly (trec_eval's own code), as a second opinion on the same files
        trec_run = {}
        for r in run:
            trec_run.setdefault(r.query_id, {})[r.doc_id] = r.score
        evaluator = pytrec_eval.RelevanceEvaluator(trec_qrels, {"P_5", "ndcg_cut_5"}, relevance_level=rel)
        per_query = evaluator.evaluate(trec_run)
        assert sum(v["P_5"] for v in per_query.values()) / len(trec_qrels) == pytest.approx(shown["P@5"])
        assert sum(v["ndcg_cut_5"] for v in per_query.values()) / len(trec_qrels) == pytest.approx(shown["nDCG@5"])


def test_csv_has_every_raw_judgment(judging, session, tmp_path):
    _judge_everything(judging, session)
    data = judging.session_data(session, "ann")
    paths = write_exports(data, analyse(data), tmp_path)
    rows = list(csv.DictReader(io.StringIO(paths[-1].read_text())))
    assert len(rows) == len(data.judgments) == judging.store.count()
    assert {(r["qid"], r["doc_id"], r["rater"]) for r in rows} == {(j.qid, j.doc_id, j.rater) for j in data.judgments}
    cant = [r for r in rows if r["cant_judge"] == "1"]
    assert cant and all(r["grade"] == "" for r in cant)


def _small_benchmark(tmp_path, count=3):
    queries = read_queries(BENCHMARK / "test.queries.tsv")
    qids = list(read_qrels(BENCHMARK / "test.qrels"))[:count]
    (tmp_path / "small.qrels").write_text("".join(f"{q} 0 doc-0{i} {i % 4}\n" for i, q in enumerate(qids)))
    (tmp_path / "small.tsv").write_text("".join(f"{q}\t{queries[q]}\n" for q in qids))
    return qids, tmp_path / "small.qrels", tmp_path / "small.tsv"


def test_import_of_benchmark_qrels_is_a_source_keyed_by_query_text(judging, session):
    qrels_path, queries_path = BENCHMARK / "test.qrels", BENCHMARK / "test.queries.tsv"
    qrels, queries = read_qrels(qrels_path), read_queries(queries_path)
    result = import_qrels(judging, qrels_path, queries_path, session, "ann")
    lines = sum(len(docs) for docs in qrels.values())
    assert (result.judgments, result.queries) == (lines, len(qrels))
    assert result.source.startswith("test.qrels (imported ")
    info = judging.store.session(session)
    stored = judging.store.judgments(info.id, rater=result.rater)
    expected = {
        (f"text:{queries[qid].strip()}", doc, grade) for qid, docs in qrels.items() for doc, grade in docs.items()
    }
    assert {(j.query_key, j.doc_id, j.grade) for j in stored} == expected
    again = import_qrels(judging, qrels_path, queries_path, session, "ann")  # same file name: a second source
    assert again.rater != result.rater and len(judging.store.imports(info.id)) == 2
    assert len(judging.store.judgments(info.id, rater=result.rater)) == lines  # the first is untouched


def test_import_sits_beside_human_grades_and_counts_only_when_asked(judging, session, tmp_path):
    qids, qrels_path, queries_path = _small_benchmark(tmp_path)
    result = import_qrels(judging, qrels_path, queries_path, session, "ann", label="bench")
    assert (result.added_to_session, result.unknown_docs) == (3, 0)
    assert [e.qid for e in judging.queries(session, "ann")][-3:] == qids
    first = judging.blind_query(session, qids[0], "ann").docs[0].doc_id
    judging.judge(session, qids[0], first, "bob", 2)
    data = judging.session_data(session, "bob")
    assert data.raters() == ["bob", result.rater] and data.humans() == ["bob"]
    assert data.title(result.rater) == result.source and result.source.startswith("bench (imported ")
    people = analyse(data)
    assert people.raters == ("bob",) and people.qrels == {qids[0]: {first: 2}}  # the import stays out by default
    assert set(people.by_import) == {result.source}  # and is scored on its own
    both = analyse(data, raters=["bob", result.rater])
    assert set(both.qrels) == set(qids)


def test_only_the_owner_imports(judging, session, tmp_path):
    _, qrels_path, queries_path = _small_benchmark(tmp_path)
    with pytest.raises(JudgingError, match="owner, ann"):
        import_qrels(judging, qrels_path, queries_path, session, "bob")
    with pytest.raises(JudgingError, match="not found"):
        import_qrels(judging, qrels_path, queries_path, session, "eve")
    assert judging.store.count() == 0 and judging.store.imports(judging.store.session(session).id) == []


@pytest.mark.parametrize(
    ("qrels", "queries", "message"),
    [
        ("q1 0 d 1\n", "q2\tother\n", "not in"),
        ("q1 0 d 7\n", "q1\ttext\n", "grades"),
        ("q1 d 1\n", "q1\ttext\n", "not a TREC qrels"),
    ],
)
def test_import_refuses_bad_files(judging, session, tmp_path, qrels, queries, message):
    (tmp_path / "x.qrels").write_text(qrels)
    (tmp_path / "x.tsv").write_text(queries)
    with pytest.raises(JudgingError, match=message):
        import_qrels(judging, tmp_path / "x.qrels", tmp_path / "x.tsv", session, "ann")
    assert judging.store.count() == 0
