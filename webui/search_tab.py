"""Search tab: one query, several retrievers side by side, a 0-3 grade on every result.

The grid is fixed (MAX_COLUMNS x TOP_K cards) and shown or hidden per search: Gradio wires
events at build time, so a fixed grid keeps every rating event a plain, testable endpoint.

A search stores its hits in the session state; the modality filter only re-renders the cards
from that state. The state is written by the search alone: the filter, the ratings and the
document view read it, so a late rating can never overwrite a newer search.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mmr.limits import MAX_RETRIEVERS_PER_SEARCH, MAX_UPLOAD_BYTES, LimitError, distinct_retrievers
from mmr.queries import QueryInputError, prepare_query
from webui.about import retrievers_markdown
from webui.cards import (
    MODALITY_CHOICES,
    SEARCH_CSS,
    card_markdown,
    column_header,
    column_record,
    displayed_hits,
    document_markdown,
    label_of,
    ranks_elsewhere,
    search_summary,
)
from webui.context import AppResources
from webui.identity import IdentityError
from webui.training_panel import picker_now, training_panel, training_tick

MAX_COLUMNS = MAX_RETRIEVERS_PER_SEARCH
TOP_K = 10
GRADE_CHOICES = [("0 not relevant", "0"), ("1 related", "1"), ("2 relevant", "2"), ("3 perfect", "3")]
DEFAULT_RETRIEVERS = 3


@dataclass
class Card:
    group: gr.Group
    image: gr.Image
    text: gr.Markdown
    grade: gr.Radio
    details: gr.Button

    def outputs(self) -> list:
        return [self.group, self.image, self.text, self.grade]


def _hidden_grid() -> list:
    columns = [gr.Column(visible=False)] * MAX_COLUMNS
    headers = [gr.Markdown("")] * MAX_COLUMNS
    cards = [gr.Group(visible=False), gr.Image(value=None), gr.Markdown(""), gr.Radio(value=None)]
    return columns + headers + cards * (MAX_COLUMNS * TOP_K)


def grade_key(state: dict, retriever: str, doc_id: str) -> str:
    return "|".join([state["collection"], state["query_key"], retriever, doc_id])


def _render(resources: AppResources, state: dict, modality_filter: str, grades: dict | None) -> list:
    """Column, header and card updates for the hits in ``state`` under ``modality_filter``."""
    if not state or not state.get("columns"):
        return _hidden_grid()
    columns = state["columns"]
    grades = grades or {}
    grid = _hidden_grid()
    headers_at, cards_at = MAX_COLUMNS, 2 * MAX_COLUMNS
    for c, column in enumerate(columns):
        shown = displayed_hits(column, modality_filter, TOP_K)
        grid[c] = gr.Column(visible=True)
        grid[headers_at + c] = gr.Markdown(column_header(column, len(shown), modality_filter))
        for r, hit in enumerate(shown):
            doc = resources.service.document(state["collection"], hit["doc_id"])
            base = cards_at + 4 * (c * TOP_K + r)
            grid[base : base + 4] = [
                gr.Group(visible=True),
                gr.Image(value=doc.image_path, visible=doc.modality == "image"),
                gr.Markdown(card_markdown(doc, hit, ranks_elsewhere(columns, hit["doc_id"], skip=c))),
                gr.Radio(value=grades.get(grade_key(state, column["retriever"], hit["doc_id"]))),
            ]
    return grid


def _search(resources: AppResources, text, image_file, collection, chosen, modality_filter, grades):
    """Returns [status, state, detail panel] + column, header and card updates, in grid order."""
    closed_detail = gr.Group(visible=False)
    collections = resources.service.collections
    try:
        if not isinstance(collection, str) or collection not in collections:
            raise QueryInputError(f"Unknown collection {str(collection)[:40]!r}; pick one of {sorted(collections)}.")
        chosen = distinct_retrievers(chosen or [])
        if not chosen:
            raise QueryInputError("Pick at least one retriever.")
        prepared = prepare_query(text, image_file, resources.settings.uploads_dir)
    except (QueryInputError, LimitError) as err:
        return [f"⚠️ {err}", {}, closed_detail] + _hidden_grid()
    query = prepared.query
    corpus = resources.service.collections[collection]
    results = resources.service.search(query, chosen, collection, TOP_K, explain=True)
    documents = {hit.doc_id: corpus[hit.doc_id] for result in results for hit in result.hits}
    state = {
        "query_key": query.key,
        "query_text": query.text,
        "image_sha": query.image_sha,
        "image_path": prepared.image_path,
        "collection": collection,
        "columns": [column_record(result, documents) for result in results],
    }
    status = prepared.notice or search_summary(len(corpus), len(results), query.text, query.image is not None)
    return [status, state, closed_detail] + _render(resources, state, modality_filter, grades)


def _preview(resources: AppResources, image_file):
    if not image_file:  # the image was removed: leave the status of the last search alone
        return gr.Image(value=None, visible=False), gr.Markdown()
    try:
        prepared = prepare_query("", image_file, resources.settings.uploads_dir)
    except QueryInputError as err:
        return gr.Image(value=None, visible=False), gr.Markdown(f"⚠️ {err}")
    # The decoded image, not its path: Gradio serves it from its cache under a name it draws, so the
    # uploads folder is never served and a name cannot be guessed from the picture.
    return gr.Image(value=prepared.query.image, visible=True), gr.Markdown("Image ready: press Search.")


def _shown_hit(state: dict, column: int, rank: int, modality_filter: str) -> tuple[dict, dict] | None:
    """(column, hit) of the card at (column, rank) as it is displayed now, or None for an empty card."""
    if not state or column >= len(state.get("columns", [])):
        return None
    shown = displayed_hits(state["columns"][column], modality_filter, TOP_K)
    return (state["columns"][column], shown[rank]) if rank < len(shown) else None


def _rate(
    resources: AppResources,
    column: int,
    rank: int,
    grade,
    state,
    modality_filter,
    grades,
    who,
    profile,
    request: gr.Request | None,
):
    found = _shown_hit(state, column, rank, modality_filter)
    if grade is None or found is None:
        return gr.Markdown(), grades
    try:
        rater = resources.identity.require(who, profile)
    except IdentityError as err:
        return gr.Markdown(f"⚠️ Not saved: {err}"), grades
    column_state, hit = found
    retriever = column_state["retriever"]
    resources.store.add_rating(
        session_id=getattr(request, "session_hash", None) or "anonymous",
        rater=rater,
        query_key=state["query_key"],
        query_text=state["query_text"],
        image_sha=state["image_sha"],
        image_path=state["image_path"],
        collection=state["collection"],
        retriever=retriever,
        doc_id=hit["doc_id"],
        rank=hit["rank"],
        score=hit["score"],
        grade=int(grade),
    )
    grades = {**(grades or {}), grade_key(state, retriever, hit["doc_id"]): grade}
    return gr.Markdown(f"Saved: grade {grade} for `{hit['doc_id']}` ({label_of(retriever)} #{hit['rank']})."), grades


def _detail(resources: AppResources, column: int, rank: int, state, modality_filter):
    found = _shown_hit(state, column, rank, modality_filter)
    if found is None:
        return gr.Group(visible=False), gr.Image(value=None), gr.Markdown("")
    column_record, hit = found
    doc = resources.service.document(state["collection"], hit["doc_id"])
    found_by = ranks_elsewhere(state["columns"], doc.id)
    text = document_markdown(doc, found_by, hit.get("explanation"), label_of(column_record["retriever"]))
    return (
        gr.Group(visible=True),
        gr.Image(value=doc.image_path, visible=doc.modality == "image"),
        gr.Markdown(text),
    )


def _build_grid() -> tuple[list[gr.Column], list[gr.Markdown], list[Card]]:
    columns, headers, cards = [], [], []
    with gr.Row(equal_height=False):
        for c in range(MAX_COLUMNS):
            with gr.Column(visible=False, min_width=200, elem_classes=["result-column"]) as column:
                headers.append(gr.Markdown(elem_classes=["column-header"]))
                for r in range(TOP_K):
                    with gr.Group(visible=False, elem_id=f"card-{c}-{r}", elem_classes=["result-card"]) as group:
                        image = gr.Image(
                            show_label=False,
                            height=110,
                            interactive=False,
                            container=False,
                            buttons=[],
                            elem_classes=["card-image"],
                        )
                        text = gr.Markdown(elem_classes=["card-text"])
                        grade = gr.Radio(
                            GRADE_CHOICES,
                            show_label=False,
                            elem_id=f"grade-{c}-{r}",
                            elem_classes=["grade"],
                            container=False,
                        )
                        details = gr.Button(
                            "details", size="sm", elem_id=f"details-{c}-{r}", elem_classes=["detail-button"]
                        )
                    cards.append(Card(group, image, text, grade, details))
            columns.append(column)
    return columns, headers, cards


@dataclass
class QueryPanel:
    text: gr.Textbox
    image: gr.File
    preview: gr.Image
    collection: gr.Radio
    retrievers: gr.CheckboxGroup


def _build_query_panel(resources: AppResources) -> QueryPanel:
    collections = resources.service.collections
    default_collection = "stamps" if "stamps" in collections else next(iter(collections))
    choices = resources.retriever_choices(default_collection)
    with gr.Row():
        text = gr.Textbox(label="Text query", placeholder="e.g. a red flower", scale=3, elem_id="query-text")
        # A File, not an Image: gr.Image decodes uploads itself and a corrupt file would fail inside
        # Gradio with a generic error; here the library's safe decoder answers with a clear message.
        image = gr.File(
            label=f"…or an image query (up to {MAX_UPLOAD_BYTES // 2**20} MB)",
            file_types=["image"],
            type="filepath",
            height=150,
            scale=1,
            elem_id="query-image",
        )
        preview = gr.Image(
            label="image query",
            interactive=False,
            height=150,
            scale=1,
            visible=False,
            buttons=[],
            elem_id="query-preview",
        )
    with gr.Row():
        collection = gr.Radio(list(collections), value=default_collection, label="Collection", elem_id="collection")
        retrievers = gr.CheckboxGroup(
            choices,
            value=[name for _, name in choices][:DEFAULT_RETRIEVERS],
            label=f"Retrievers (up to {MAX_COLUMNS})",
            elem_id="retrievers",
            scale=2,
        )
    return QueryPanel(text, image, preview, collection, retrievers)


def _build_detail_panel() -> tuple[gr.Group, gr.Image, gr.Markdown, gr.Button]:
    with gr.Group(visible=False, elem_id="doc-detail") as detail, gr.Row():
        image = gr.Image(
            show_label=False, height=360, interactive=False, buttons=["fullscreen"], scale=1, elem_id="doc-detail-image"
        )
        with gr.Column(scale=2):
            text = gr.Markdown(elem_id="doc-detail-text")
            close = gr.Button("Close", size="sm", elem_id="doc-detail-close")
    return detail, image, text, close


def build_search_tab(demo: gr.Blocks, resources: AppResources, who: gr.State) -> None:
    query = _build_query_panel(resources)
    training, timer = training_panel(resources)
    shown_choices = gr.State([name for _, name in resources.retriever_choices(query.collection.value)])
    # The picker was built when the app started; a page opened later lists what is loaded by then.
    demo.load(
        lambda collection: picker_now(resources, collection),
        inputs=query.collection,
        outputs=[query.retrievers, shown_choices],
        api_visibility="private",
    )
    timer.tick(
        lambda collection, shown: training_tick(resources, collection, shown),
        inputs=[query.collection, shown_choices],
        outputs=[training, query.retrievers, shown_choices, timer],
        api_visibility="private",
        show_progress="hidden",
    )
    with gr.Accordion("What these retrievers are", open=False, elem_id="retriever-overview"):
        # as of each page load: methods trained since the app started are in it
        gr.Markdown(lambda: retrievers_markdown(resources.retriever_overview(), resources.service.not_configured))
    search_button = gr.Button("Search", variant="primary", elem_id="search-button")
    with gr.Row(equal_height=True):
        status = gr.Markdown(elem_id="search-status")
        modality = gr.Radio(
            MODALITY_CHOICES,
            value="all",
            label="Show",
            info="filters the results shown; does not search again",
            elem_id="modality-filter",
            scale=0,
            min_width=300,
        )
    state = gr.State({})
    grades = gr.State({})  # (collection, query, retriever, doc) -> grade given in this session
    detail, detail_image, detail_text, close = _build_detail_panel()
    columns, headers, cards = _build_grid()
    gr.HTML("", head=f"<style>{SEARCH_CSS}</style>", padding=False)  # the tab's own CSS, wherever it is mounted
    grid = columns + headers + [x for card in cards for x in card.outputs()]

    search_args = dict(
        fn=lambda *a: _search(resources, *a),
        inputs=[query.text, query.image, query.collection, query.retrievers, modality, grades],
        outputs=[status, state, detail] + grid,
    )
    search_button.click(api_name="search", **search_args)
    query.text.submit(api_visibility="private", **search_args)
    modality.change(
        lambda s, m, g: _render(resources, s, m, g),
        inputs=[state, modality, grades],
        outputs=grid,
        api_visibility="private",
    )
    query.image.change(
        lambda path: _preview(resources, path),
        inputs=query.image,
        outputs=[query.preview, status],
        api_visibility="private",
    )
    query.collection.change(
        lambda name: picker_now(resources, name),
        inputs=query.collection,
        outputs=[query.retrievers, shown_choices],
        api_visibility="private",
    )
    close.click(lambda: gr.Group(visible=False), outputs=detail, api_visibility="private")
    for index, card in enumerate(cards):
        column, rank = divmod(index, TOP_K)

        def on_rate(
            grade,
            state,
            modality,
            grades,
            who,
            profile: gr.OAuthProfile | None,
            request: gr.Request,
            column=column,
            rank=rank,
        ):
            return _rate(resources, column, rank, grade, state, modality, grades, who, profile, request)

        def on_details(state, modality, column=column, rank=rank):
            return _detail(resources, column, rank, state, modality)

        card.grade.input(
            on_rate,
            inputs=[card.grade, state, modality, grades, who],
            outputs=[status, grades],
            api_visibility="private",
        )
        card.details.click(
            on_details,
            inputs=[state, modality],
            outputs=[detail, detail_image, detail_text],
            api_visibility="private",
            scroll_to_output=True,
        )
