"""Search tab: one query, several retrievers side by side, a 0-3 grade on every result.

The grid is fixed (MAX_COLUMNS x TOP_K cards) and shown or hidden per search: Gradio wires
events at build time, so a fixed grid keeps every rating event a plain, testable endpoint.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass

import gradio as gr

from mmr.queries import QueryInputError, prepare_query
from mmr.retrievers import RETRIEVERS
from mmr.types import Document
from webui.context import AppResources

MAX_COLUMNS = 6
TOP_K = 10
GRADE_CHOICES = [("0 not relevant", "0"), ("1 related", "1"), ("2 relevant", "2"), ("3 perfect", "3")]
DEFAULT_RETRIEVERS = 3


@dataclass
class Card:
    group: gr.Group
    image: gr.Image
    text: gr.Markdown
    grade: gr.Radio


def describe(doc: Document, rank: int, score: float, also_in: list[str]) -> str:
    caption = html.escape(doc.text[:280] + ("…" if len(doc.text) > 280 else ""))
    category = doc.metadata.get("category", "")
    shared = f"  \n🔁 also found by {', '.join(also_in)}" if also_in else ""
    return (f"**#{rank}** · score {score:.3f} · {doc.modality}"
            f"{' · ' + html.escape(category) if category else ''}  \n{caption}  \n"
            f"<small>`{html.escape(doc.id)}`</small>{shared}")


def _search(resources: AppResources, text, image_file, collection, chosen, rater):
    """Returns [status, state] + column updates + per-card updates, in grid order."""
    hidden_columns = [gr.Column(visible=False)] * MAX_COLUMNS
    headers = [gr.Markdown("")] * MAX_COLUMNS
    cards = [gr.Group(visible=False), gr.Image(value=None), gr.Markdown(""), gr.Radio(value=None)] * (MAX_COLUMNS * TOP_K)
    chosen = list(chosen or [])[:MAX_COLUMNS]
    try:
        if not chosen:
            raise QueryInputError("Pick at least one retriever.")
        prepared = prepare_query(text, image_file, resources.settings.uploads_dir)
    except QueryInputError as err:
        return [f"⚠️ {err}", {}] + hidden_columns + headers + cards
    query = prepared.query
    results = resources.service.search(query, chosen, collection, TOP_K)
    found_by: dict[str, list[str]] = {}
    for result in results:
        for hit in result.hits:
            found_by.setdefault(hit.doc_id, []).append(f"{RETRIEVERS[result.retriever].label} #{hit.rank}")
    columns, state_columns = [], []
    for c in range(MAX_COLUMNS):
        columns.append(gr.Column(visible=c < len(results)))
    for c, result in enumerate(results):
        label = RETRIEVERS[result.retriever].label
        headers[c] = gr.Markdown(f"### {label}\n{result.latency_ms:.0f} ms · {len(result.hits)} results"
                                 + (f"\n\n⚠️ {result.error}" if result.error else ""))
        state_columns.append({"retriever": result.retriever, "hits": [asdict(h) for h in result.hits]})
        for r, hit in enumerate(result.hits[:TOP_K]):
            doc = resources.service.document(collection, hit.doc_id)
            others = [name for name in found_by[hit.doc_id] if not name.startswith(label + " #")]
            base = 4 * (c * TOP_K + r)
            cards[base:base + 4] = [
                gr.Group(visible=True),
                gr.Image(value=doc.image_path, visible=doc.modality == "image"),
                gr.Markdown(describe(doc, hit.rank, hit.score, others)),
                gr.Radio(value=None),
            ]
    state = {"query_key": query.key, "query_text": query.text, "image_sha": query.image_sha,
             "image_path": prepared.image_path, "collection": collection, "columns": state_columns}
    status = prepared.notice or f"Searched {len(resources.service.collections[collection]):,} documents."
    return [status, state] + columns + headers + cards


def _preview(resources: AppResources, image_file):
    if not image_file:
        return gr.Image(value=None, visible=False), gr.Markdown("")
    try:
        prepared = prepare_query("", image_file, resources.settings.uploads_dir)
    except QueryInputError as err:
        return gr.Image(value=None, visible=False), gr.Markdown(f"⚠️ {err}")
    return gr.Image(value=prepared.image_path, visible=True), gr.Markdown("Image ready: press Search.")


def _rate(resources: AppResources, column: int, rank: int, grade, state, rater, request: gr.Request | None):
    if grade is None or not state or column >= len(state.get("columns", [])):
        return gr.Markdown()
    hits = state["columns"][column]["hits"]
    if rank >= len(hits):
        return gr.Markdown()
    hit = hits[rank]
    retriever = state["columns"][column]["retriever"]
    resources.store.add_rating(
        session_id=getattr(request, "session_hash", None) or "anonymous", rater=(rater or "").strip() or None,
        query_key=state["query_key"], query_text=state["query_text"], image_sha=state["image_sha"],
        image_path=state["image_path"], collection=state["collection"], retriever=retriever,
        doc_id=hit["doc_id"], rank=hit["rank"], score=hit["score"], grade=int(grade),
    )
    return gr.Markdown(f"Saved: grade {grade} for `{hit['doc_id']}` ({RETRIEVERS[retriever].label} #{hit['rank']}).")


def build_search_tab(resources: AppResources) -> None:
    default_collection = "stamps" if "stamps" in resources.service.collections else next(iter(resources.service.collections))
    choices = resources.retriever_choices(default_collection)
    with gr.Row():
        query_text = gr.Textbox(label="Text query", placeholder="e.g. a red flower", scale=3, elem_id="query-text")
        # A File, not an Image: gr.Image decodes uploads itself and a corrupt file would fail inside
        # Gradio with a generic error; here the library's safe decoder answers with a clear message.
        query_image = gr.File(label="…or an image query", file_types=["image"], type="filepath", height=150,
                              scale=1, elem_id="query-image")
        preview = gr.Image(label="image query", interactive=False, height=150, scale=1, visible=False,
                           elem_id="query-preview")
    with gr.Row():
        collection = gr.Radio(list(resources.service.collections), value=default_collection, label="Collection")
        chosen = gr.CheckboxGroup(choices, value=[name for _, name in choices][:DEFAULT_RETRIEVERS],
                                  label="Retrievers (up to 6)", elem_id="retrievers", scale=2)
        rater = gr.Textbox(label="Your name (optional, saved with ratings)", elem_id="rater")
    search_button = gr.Button("Search", variant="primary", elem_id="search-button")
    status = gr.Markdown(elem_id="search-status")
    state = gr.State({})
    columns, headers, cards = [], [], []
    with gr.Row(equal_height=False):
        for c in range(MAX_COLUMNS):
            with gr.Column(visible=False, min_width=180, elem_classes=["result-column"]) as column:
                headers.append(gr.Markdown(elem_classes=["column-header"]))
                for r in range(TOP_K):
                    with gr.Group(visible=False, elem_classes=["result-card"]) as group:
                        image = gr.Image(show_label=False, height=130, interactive=False, container=False)
                        text = gr.Markdown()
                        grade = gr.Radio(GRADE_CHOICES, show_label=False, elem_id=f"grade-{c}-{r}",
                                         elem_classes=["grade"])
                    cards.append(Card(group, image, text, grade))
            columns.append(column)
    outputs = [status, state] + columns + headers + [x for card in cards for x in (card.group, card.image, card.text, card.grade)]
    search_args = dict(fn=lambda *a: _search(resources, *a), inputs=[query_text, query_image, collection, chosen, rater],
                       outputs=outputs)
    search_button.click(api_name="search", **search_args)
    query_text.submit(api_visibility="private", **search_args)
    query_image.change(lambda path: _preview(resources, path), inputs=query_image, outputs=[preview, status],
                       api_visibility="private")
    collection.change(lambda name: gr.CheckboxGroup(choices=resources.retriever_choices(name)),
                      inputs=collection, outputs=chosen, api_visibility="private")
    for index, card in enumerate(cards):
        column, rank = divmod(index, TOP_K)

        def on_rate(grade, state, rater, request: gr.Request, column=column, rank=rank):
            return _rate(resources, column, rank, grade, state, rater, request)

        card.grade.input(on_rate, inputs=[card.grade, state, rater], outputs=status, api_visibility="private")
