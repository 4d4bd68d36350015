"""Blind pooled judging: sessions of queries, pools of several retrievers' top k shown without names,
one grade per (session, query, doc, rater), error analysis from those grades, TREC/CSV exports and imports.
Every call names the (already verified) rater making it; sessions have an owner and members.

    service = JudgingService(search_service, rating_store.judgments, settings.uploads_dir)
    service.create_session("week 1", "stamps", ["bm25", "zeroshot-verbal"], k=5, owner="ann")
    service.add_text_queries("week 1", parse_query_lines("a red flower\\nq7\\tan old car"), "ann")
    service.join(service.join_code("week 1", "ann"), "bob")   # ann shares the code; bob is a member
    view = service.blind_query("week 1", "q1", "bob")        # the pool, shuffled, no retriever names
    service.judge("week 1", "q1", view.docs[0].doc_id, rater="bob", grade=2)
    analysis = analyse(service.session_data("week 1", "bob"))  # P@k, nDCG@k, MRR@k, agreement, ...
"""

from mmr.judging.analysis import Analysis, Judged, SessionData, aggregate_qrels, analyse
from mmr.judging.imports import ImportResult, import_qrels, parse_query_lines, read_query_file
from mmr.judging.sessions import BlindDoc, BlindQuery, JudgingError, JudgingService, Progress

__all__ = [
    "Analysis",
    "BlindDoc",
    "BlindQuery",
    "ImportResult",
    "Judged",
    "JudgingError",
    "JudgingService",
    "Progress",
    "SessionData",
    "aggregate_qrels",
    "analyse",
    "import_qrels",
    "parse_query_lines",
    "read_query_file",
]
