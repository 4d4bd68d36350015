"""Programmatic endpoints (for gradio_client, scripts and tests): the same library calls the widgets use.

Searching is open to everyone; a rating needs a rater (webui.identity): locally a name with the token
``/claim_rater`` gave for it, where raters sign in the signed-in account. Every value is checked as
the type it is (mmr.limits) and a refusal answers {"error": message}.
"""

from __future__ import annotations

from dataclasses import asdict

import gradio as gr

from mmr.limits import (
    MAX_QUERY_CHARS,
    MAX_RANK,
    MAX_SEARCH_K,
    LimitError,
    checked_float,
    checked_int,
    checked_text,
    distinct_retrievers,
)
from mmr.queries import QueryInputError, prepare_query
from mmr.store.schema import GRADES
from webui.context import AppResources


def register_api(resources: AppResources) -> None:
    service = resources.service

    def collection_of(collection: object) -> str:
        if not isinstance(collection, str) or collection not in service.collections:
            raise LimitError(f"unknown collection {str(collection)[:40]!r}; available: {sorted(service.collections)}")
        return collection

    def search_json(text: str, collection: str = "stamps", retrievers: list[str] | None = None, k: int = 10) -> dict:
        """Search with a text query; returns {"results": [{"retriever", "latency_ms", "hits": [...], "explanations":
        {doc_id: ...}}]} or {"error"}. Explanations come from retrievers that can give them (LSR's matching terms).
        At most 6 distinct retrievers (default: those loaded), k from 1 to 100."""
        try:
            collection = collection_of(collection)
            names = distinct_retrievers(retrievers) if retrievers else service.available(collection)[:6]
            k = checked_int(k, "k", 1, MAX_SEARCH_K)
            prepared = prepare_query(text, None, resources.settings.uploads_dir)
        except (QueryInputError, LimitError) as err:
            return {"error": str(err)}
        results = service.search(prepared.query, names, collection, k, explain=True)
        return {
            "query_key": prepared.query.key,
            "notice": prepared.notice,
            "results": [asdict(result) for result in results],
        }

    def rate(
        query_text: str,
        retriever: str,
        doc_id: str,
        rank: int,
        score: float,
        grade: int,
        collection: str = "stamps",
        rater: str = "",
        token: str = "",
        session_id: str = "api",
        profile: gr.OAuthProfile | None = None,
    ) -> dict:
        """Store one 0-3 grade, as your rater, for a result of a text query; returns {"rating_id"} or {"error"}."""
        try:
            who = resources.identity.api_rater(rater, token, profile)
            query_text = checked_text(query_text, "query_text", MAX_QUERY_CHARS)
            collection = collection_of(collection)
            if retriever not in service.available(collection):
                raise LimitError(
                    f"retriever {str(retriever)[:64]!r} is not loaded on {collection}; "
                    f"available: {service.available(collection)}"
                )
            if not isinstance(doc_id, str) or doc_id not in service.collections[collection]:
                raise LimitError(f"document {str(doc_id)[:80]!r} is not in collection {collection!r}")
            rating_id = resources.store.add_rating(
                session_id=checked_text(session_id, "session_id", 64),
                rater=who,
                query_key=f"text:{query_text}",
                query_text=query_text,
                collection=collection,
                retriever=retriever,
                doc_id=doc_id,
                rank=checked_int(rank, "rank", 1, MAX_RANK),
                score=checked_float(score, "score"),
                grade=checked_int(grade, "grade", min(GRADES), max(GRADES)),
            )
        except ValueError as err:  # LimitError, IdentityError: messages meant for the caller
            return {"error": str(err)}
        return {"rating_id": rating_id}

    gr.api(search_json, api_name="search_json")
    gr.api(rate, api_name="rate")
