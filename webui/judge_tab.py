"""Judge (blind) tab: create or open a session, add queries, step through them and grade every pooled
document without knowing which retriever found it.

The grid is fixed (MAX_POOL cards, shown or hidden per query) for the same reason as the Search
tab's: events are wired at build time. A card knows only its position; the doc id behind a position
is in the per-browser state written when the query is shown.
"""

from __future__ import annotations

import html
import secrets

import gradio as gr

from mmr.judging import JudgingService, parse_query_lines, read_query_file
from mmr.judging.sessions import MAX_K, MAX_RETRIEVERS
from webui.context import AppResources

MAX_POOL = MAX_RETRIEVERS * MAX_K
DEFAULT_K = 5
CANT_JUDGE = "x"
GRADE_CHOICES = [
    ("0 not relevant", "0"),
    ("1 related", "1"),
    ("2 relevant", "2"),
    ("3 perfect", "3"),
    ("can't judge", CANT_JUDGE),
]
CARD_TEXT_CHARS = 160

JUDGE_CSS = """
.pool-grid { flex-wrap: wrap !important; gap: 8px !important; }
.pool-card { flex: 0 0 230px !important; min-width: 230px !important; max-width: 230px !important;
  border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 4px !important; }
.pool-card .prose p { font-size: 12px !important; line-height: 1.3 !important; margin: 0 !important; }
.pool-card img { object-fit: contain; }
.pool-grade .wrap { gap: 2px !important; }
.pool-grade label { padding: 1px 5px !important; font-size: 11px !important; }
"""


def _grade_value(grade: int | None, judged: bool) -> str | None:
    if not judged:
        return None
    return CANT_JUDGE if grade is None else str(grade)


def _card_text(doc) -> str:
    text = doc.text[:CARD_TEXT_CHARS] + ("…" if len(doc.text) > CARD_TEXT_CHARS else "")
    return f"**{doc.position}.** {html.escape(text)}  \n<small>`{html.escape(doc.doc_id)}`</small>"


def _progress_text(judging: JudgingService, session: str, rater: str, graded_here: int, pool_size: int) -> str:
    progress = judging.progress(session, rater)
    return (
        f"**{html.escape(rater.strip())}**: this query {graded_here} of {pool_size} graded · session "
        f"{progress.docs_judged} of {progress.docs} pooled documents, {progress.queries_done} of "
        f"{progress.queries} queries complete"
    )


def _empty_view(message: str) -> list:
    cards = [gr.Column(visible=False), gr.Image(value=None), gr.Markdown(""), gr.Radio(value=None)] * MAX_POOL
    return [{}, gr.Markdown(message), gr.Image(value=None, visible=False), gr.Markdown("")] + cards


def _show(judging: JudgingService, session: str | None, position: int, rater: str) -> list:
    """[state, header, query image, progress] + per-card (column, image, text, grade) updates."""
    if not session:
        return _empty_view("Create a session or open one.")
    queries = judging.queries(session)
    if not queries:
        return _empty_view(f"Session **{html.escape(session)}** has no queries yet: add some above.")
    entry = queries[max(0, min(position, len(queries)) - 1)]
    view = judging.blind_query(session, entry.qid)
    rater = (rater or "").strip()
    grades = judging.grades(session, entry.qid, rater) if rater else {}
    cards = []
    for index in range(MAX_POOL):
        if index >= len(view.docs):
            cards += [gr.Column(visible=False), gr.Image(value=None), gr.Markdown(""), gr.Radio(value=None)]
            continue
        doc = view.docs[index]
        cards += [
            gr.Column(visible=True),
            gr.Image(value=doc.image_path, visible=doc.modality == "image"),
            gr.Markdown(_card_text(doc)),
            gr.Radio(value=_grade_value(grades.get(doc.doc_id), doc.doc_id in grades)),
        ]
    query_text = html.escape(view.text or "") or "(image query)"
    header = (
        f"### Query {view.position} of {view.total} · `{html.escape(view.qid)}`: {query_text}\n"
        f"{len(view.docs)} pooled documents, in an order that says nothing about who found them."
    )
    state = {"session": session, "position": view.position, "qid": view.qid, "docs": [d.doc_id for d in view.docs]}
    progress = (
        _progress_text(judging, session, rater, len(grades), len(view.docs)) if rater else "Type your name to grade."
    )
    return [
        state,
        gr.Markdown(header),
        gr.Image(value=view.image_path, visible=view.image_path is not None),
        gr.Markdown(progress),
    ] + cards


def _create(judging: JudgingService, name, collection, retrievers, k):
    try:
        info = judging.create_session(name, collection, list(retrievers or []), int(k))
    except ValueError as err:
        return gr.Dropdown(), f"⚠️ {err}", gr.Accordion()
    return (
        gr.Dropdown(choices=judging.session_names(), value=info.name),
        f"Created session **{html.escape(info.name)}** ({len(info.retrievers)} retrievers, top {info.k}).",
        gr.Accordion(open=False),  # out of the way of the judging below
    )


def _add(judging: JudgingService, session, lines, query_file, images):
    """[status, lines, query file, images]: the inputs are emptied once their queries are in."""
    keep = [gr.Textbox(), gr.File(), gr.File()]
    if not session:
        return ["⚠️ Create or open a session first.", *keep]
    try:
        entries = parse_query_lines(lines or "")
        if query_file:
            entries += read_query_file(query_file)
        added = judging.add_text_queries(session, entries)
        for image in images or []:
            added.append(judging.add_image_query(session, image))
    except ValueError as err:
        return [f"⚠️ {err}", *keep]
    if not added:
        return ["⚠️ Nothing to add: type queries, one per line, or upload a query file or images.", *keep]
    status = f"Added {len(added)} queries; the session has {len(judging.queries(session))}."
    return [status, gr.Textbox(value=""), gr.File(value=None), gr.File(value=None)]


def _grade(judging: JudgingService, index: int, value, state, rater):
    if value is None or not state or index >= len(state.get("docs", [])):
        return gr.Markdown(), gr.Markdown()
    grade = None if value == CANT_JUDGE else int(value)
    try:
        judging.judge(state["session"], state["qid"], state["docs"][index], rater, grade)
    except ValueError as err:
        return gr.Markdown(), gr.Markdown(f"⚠️ Not saved: {err}")
    graded = len(judging.grades(state["session"], state["qid"], rater))
    return (
        gr.Markdown(_progress_text(judging, state["session"], rater, graded, len(state["docs"]))),
        gr.Markdown(f"Saved document {index + 1}."),
    )


def _session_block(resources: AppResources, judging: JudgingService):
    collections = list(resources.service.collections)
    default = "stamps" if "stamps" in collections else collections[0]
    choices = resources.retriever_choices(default)
    with gr.Row():
        session = gr.Dropdown(judging.session_names(), value=None, label="Session", elem_id="judge-session", scale=2)
        rater = gr.Textbox(
            label="Your name, then Enter (or keep the token this browser was given)", elem_id="judge-rater", scale=2
        )
        open_button = gr.Button("Open", elem_id="judge-open", scale=1)
    with gr.Accordion("New session", open=not judging.session_names()) as new_session:
        with gr.Row():
            name = gr.Textbox(label="Name", elem_id="judge-new-name")
            collection = gr.Radio(collections, value=default, label="Collection")
            k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Top k of each retriever", elem_id="judge-k")
        retrievers = gr.CheckboxGroup(
            choices,
            value=[n for _, n in choices][:3],
            label=f"Retrievers (2 to {MAX_RETRIEVERS})",
            elem_id="judge-retrievers",
        )
        create = gr.Button("Create session", variant="primary", elem_id="judge-create")
    collection.change(
        lambda c: gr.CheckboxGroup(choices=resources.retriever_choices(c)),
        inputs=collection,
        outputs=retrievers,
        api_visibility="private",
    )
    return session, rater, open_button, new_session, (name, collection, retrievers, k, create)


def _query_block():
    with gr.Accordion("Add queries", open=True):
        with gr.Row():
            lines = gr.Textbox(
                label="Queries, one per line (or qid<TAB>query)", lines=3, scale=3, elem_id="judge-query-lines"
            )
            query_file = gr.File(
                label="…or a query file (.tsv/.txt)",
                file_types=[".tsv", ".txt"],
                type="filepath",
                height=120,
                scale=1,
                elem_id="judge-query-file",
            )
            images = gr.File(
                label="…or image queries",
                file_count="multiple",
                file_types=["image"],
                type="filepath",
                height=120,
                scale=1,
                elem_id="judge-query-images",
            )
        add = gr.Button("Add queries", elem_id="judge-add")
    return lines, query_file, images, add


def _pool_grid() -> list[tuple]:
    cards = []
    with gr.Row(elem_classes=["pool-grid"], elem_id="judge-pool"):
        for index in range(MAX_POOL):
            with gr.Column(visible=False, elem_classes=["pool-card"], elem_id=f"pool-card-{index}") as column:
                image = gr.Image(
                    show_label=False, height=150, interactive=False, container=False, buttons=["fullscreen"]
                )
                text = gr.Markdown()
                grade = gr.Radio(
                    GRADE_CHOICES, show_label=False, elem_id=f"pool-grade-{index}", elem_classes=["pool-grade"]
                )
            cards.append((column, image, text, grade))
    return cards


def build_judge_tab(demo: gr.Blocks, resources: AppResources, judging: JudgingService) -> gr.Dropdown:
    session, rater, open_button, new_session, creation = _session_block(resources, judging)
    lines, query_file, images, add = _query_block()
    status = gr.Markdown(elem_id="judge-status")
    gr.Markdown(
        "Grades: **0** not relevant · **1** related · **2** relevant · **3** perfect · **can't judge**. "
        "Each grade is saved at once; grading again replaces it."
    )
    with gr.Row():
        previous = gr.Button("◀ Previous", elem_id="judge-previous", scale=0, min_width=150)
        header = gr.Markdown(elem_id="judge-header")
        following = gr.Button("Next ▶", elem_id="judge-next", scale=0, min_width=150)
    query_image = gr.Image(label="image query", interactive=False, height=160, visible=False)
    progress = gr.Markdown(elem_id="judge-progress")
    state = gr.State({})
    cards = _pool_grid()
    view_outputs = [state, header, query_image, progress] + [c for card in cards for c in card]

    def show(session_name, position, rater_name):
        return _show(judging, session_name, position, rater_name)

    def step(offset):
        return lambda st, rater_name: show(st.get("session"), st.get("position", 1) + offset, rater_name)

    private = dict(api_visibility="private")
    *inputs, create = creation
    create.click(lambda *a: _create(judging, *a), inputs, [session, status, new_session], **private).success(
        lambda s, r: show(s, 1, r), [session, rater], view_outputs, **private
    )
    for opened in (open_button.click, session.input):
        opened(lambda s, r: show(s, 1, r), [session, rater], view_outputs, **private).then(
            lambda: gr.Accordion(open=False), None, new_session, **private
        )
    query_inputs = [lines, query_file, images]
    add.click(lambda *a: _add(judging, *a), [session, *query_inputs], [status, *query_inputs], **private).then(
        lambda s, st, r: show(s, st.get("position", 1) if st.get("session") == s else 1, r),
        [session, state, rater],
        view_outputs,
        **private,
    )
    previous.click(step(-1), [state, rater], view_outputs, **private)
    following.click(step(+1), [state, rater], view_outputs, **private)
    rater.submit(step(0), [state, rater], view_outputs, **private)
    for index, (_, _, _, grade) in enumerate(cards):
        grade.input(
            lambda value, st, r, index=index: _grade(judging, index, value, st, r),
            [grade, state, rater],
            [progress, status],
            **private,
        )
    _remember_rater(demo, rater)
    return session


def _remember_rater(demo: gr.Blocks, rater: gr.Textbox) -> None:
    """No passwords: a rater is a name, or a random token this browser keeps (localStorage)."""
    saved = gr.BrowserState("", storage_key="mmr-judge-rater")
    demo.load(lambda name: name or f"anon-{secrets.token_hex(3)}", saved, rater, api_visibility="private").then(
        lambda name: name, rater, saved, api_visibility="private"
    )
    rater.change(lambda name: (name or "").strip(), rater, saved, api_visibility="private")
