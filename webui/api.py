"""Programmatic endpoints (for gradio_client, scripts and tests): the same library calls the widgets use."""

from __future__ import annotations

from dataclasses import asdict

import gradio as gr

from mmr.queries import QueryInputError, prepare_query
from mmr.retrievers import RETRIEVERS
from webui.context import AppResources


def register_api(resources: AppResources) -> None:
    def search_json(text: str, collection: str = "stamps", retrievers: list[str] | None = None, k: int = 10) -> dict:
        """Search with a text query; returns {"results": [{"retriever", "latency_ms", "hits": [...], "explanations":
        {doc_id: ...}}]} or {"error"}. Explanations come from retrievers that can give them (LSR's matching terms)."""
        try:
            prepared = prepare_query(text, None, resources.settings.uploads_dir)
        except QueryInputError as err:
            return {"error": str(err)}
        if collection not in resources.service.collections:
            return {"error": f"unknown collection {collection!r}; available: {sorted(resources.service.collections)}"}
        names = retrievers or resources.service.available(collection)
        k = max(1, min(int(k), 100))
        results = resources.service.search(prepared.query, names, collection, k, explain=True)
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
        session_id: str = "api",
    ) -> dict:
        """Store one 0-3 grade for a result of a text query; returns {"rating_id"} or {"error"}."""
        query_text = (query_text or "").strip()
        if not query_text:
            return {"error": "query_text is empty"}
        if retriever not in RETRIEVERS:
            return {"error": f"retriever {retriever!r} not found. Available: {sorted(RETRIEVERS)}"}
        if collection not in resources.service.collections or doc_id not in resources.service.collections[collection]:
            return {"error": f"document {doc_id!r} is not in collection {collection!r}"}
        try:
            rating_id = resources.store.add_rating(
                session_id=session_id,
                rater=rater or None,
                query_key=f"text:{query_text}",
                query_text=query_text,
                collection=collection,
                retriever=retriever,
                doc_id=doc_id,
                rank=int(rank),
                score=float(score),
                grade=int(grade),
            )
        except ValueError as err:
            return {"error": str(err)}
        return {"rating_id": rating_id}

    gr.api(search_json, api_name="search_json")
    gr.api(rate, api_name="rate")
