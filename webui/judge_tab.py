"""Judge (blind) tab: create, join or open a session, add queries (its owner), step through them and
grade every pooled document without knowing which retriever found it.

Who grades is the page's identity (webui.identity), never a name typed here; every handler resolves it
on the server and the judging service checks membership and ownership again.

The grid is fixed (MAX_POOL cards, shown or hidden per query) for the same reason as the Search
tab's: events are wired at build time. A card knows only its position; the doc id behind a position
is in the per-browser state written when the query is shown.
"""

from __future__ import annotations

import html

import gradio as gr
from PIL import Image

from mmr.judging import JudgingService, parse_query_lines, read_query_file
from mmr.judging.sessions import MAX_K, MAX_RETRIEVERS
from webui.context import AppResources
from webui.identity import Identity, IdentityBar, as_rater

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
        f"**{html.escape(rater)}**: this query {graded_here} of {pool_size} graded · session "
        f"{progress.docs_judged} of {progress.docs} pooled documents, {progress.queries_done} of "
        f"{progress.queries} queries complete"
    )


def _empty_view(message: str) -> list:
    cards = [gr.Column(visible=False), gr.Image(value=None), gr.Markdown(""), gr.Radio(value=None)] * MAX_POOL
    return [{}, gr.Markdown(message), gr.Image(value=None, visible=False), gr.Markdown("")] + cards


def _query_image(path: str | None) -> Image.Image | None:
    # The image itself, not its path: the uploads folder is not served (Gradio serves this from its cache).
    return Image.open(path).convert("RGB") if path else None


def _show(judging: JudgingService, session: str | None, position: int, rater: str | None) -> list:
    """[state, header, query image, progress] + per-card (column, image, text, grade) updates."""
    if not rater:
        return _empty_view("Sign in (or reload for a rater name) to judge.")
    if not session:
        return _empty_view("Create a session, join one with its code, or open one of yours.")
    try:
        queries = judging.queries(session, rater)
    except ValueError as err:
        return _empty_view(f"⚠️ {html.escape(str(err))}")
    if not queries:
        return _empty_view(f"Session **{html.escape(session)}** has no queries yet: its owner adds them above.")
    entry = queries[max(0, min(position, len(queries)) - 1)]
    view = judging.blind_query(session, entry.qid, rater)
    grades = judging.grades(session, entry.qid, rater)
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
    return [
        state,
        gr.Markdown(header),
        gr.Image(value=_query_image(view.image_path), visible=view.image_path is not None),
        gr.Markdown(_progress_text(judging, session, rater, len(grades), len(view.docs))),
    ] + cards


def _manage_text(judging: JudgingService, session: str | None, rater: str | None, request: gr.Request | None) -> str:
    """For the owner: the join code and link to share. Others see who owns the session."""
    if not session or not rater:
        return ""
    try:
        info = judging.session(session, rater)
        if info.owner != rater:
            return f"Session **{html.escape(session)}** is owned by **{html.escape(info.owner or 'nobody')}**."
        code = judging.join_code(session, rater)
    except ValueError:
        return ""
    # the page's own address (the browser sends it with each event), not the queue endpoint this request came to
    headers = getattr(request, "headers", None) or {}
    base = str(headers.get("referer", "")).split("?")[0]
    link = f" or send them the link `{base}?join={code}`" if base else ""
    return f"You own **{html.escape(session)}**. To invite raters, give them the join code `{code}`{link}."


def _create(judging: JudgingService, rater, name, collection, retrievers, k):
    if not rater:
        return gr.Dropdown(), "⚠️ Sign in (or reload for a rater name) to create a session.", gr.Accordion()
    try:
        info = judging.create_session(name, collection, list(retrievers or []), k, rater)
    except ValueError as err:
        return gr.Dropdown(), f"⚠️ {html.escape(str(err))}", gr.Accordion()
    return (
        gr.Dropdown(choices=judging.session_names(rater), value=info.name),
        f"Created session **{html.escape(info.name)}** ({len(info.retrievers)} retrievers, top {info.k}).",
        gr.Accordion(open=False),  # out of the way of the judging below
    )


def _join(judging: JudgingService, rater, code):
    if not rater:
        return gr.Dropdown(), "⚠️ Sign in (or reload for a rater name) to join a session."
    try:
        info = judging.join(code, rater)
    except ValueError as err:
        return gr.Dropdown(), f"⚠️ {html.escape(str(err))}"
    return (
        gr.Dropdown(choices=judging.session_names(rater), value=info.name),
        f"Joined **{html.escape(info.name)}**.",
    )


def _delete(judging: JudgingService, rater, session, sure):
    if not sure:
        return gr.Dropdown(), "⚠️ Tick the box to confirm: deleting removes the session's queries and grades."
    try:
        judging.delete_session(session, rater)
    except ValueError as err:
        return gr.Dropdown(), f"⚠️ {html.escape(str(err))}"
    return gr.Dropdown(choices=judging.session_names(rater), value=None), f"Deleted {html.escape(session)}."


def _add(judging: JudgingService, rater, session, lines, query_file, images):
    """[status, lines, query file, images]: the inputs are emptied once their queries are in."""
    keep = [gr.Textbox(), gr.File(), gr.File()]
    if not session or not rater:
        return ["⚠️ Create or open a session first.", *keep]
    try:
        entries = parse_query_lines(lines or "")
        if query_file:
            entries += read_query_file(query_file)
        added = judging.add_text_queries(session, entries, rater)
        for image in images or []:
            added.append(judging.add_image_query(session, image, rater))
    except ValueError as err:
        return [f"⚠️ {html.escape(str(err))}", *keep]
    if not added:
        return ["⚠️ Nothing to add: type queries, one per line, or upload a query file or images.", *keep]
    status = f"Added {len(added)} queries; the session has {len(judging.queries(session, rater))}."
    return [status, gr.Textbox(value=""), gr.File(value=None), gr.File(value=None)]


def _grade(judging: JudgingService, index: int, value, state, rater):
    if value is None or not state or index >= len(state.get("docs", [])):
        return gr.Markdown(), gr.Markdown()
    if not rater:
        return gr.Markdown(), gr.Markdown("⚠️ Not saved: sign in (or reload for a rater name) to grade.")
    grade = None if value == CANT_JUDGE else int(value)
    try:
        judging.judge(state["session"], state["qid"], state["docs"][index], rater, grade)
    except ValueError as err:
        return gr.Markdown(), gr.Markdown(f"⚠️ Not saved: {html.escape(str(err))}")
    graded = len(judging.grades(state["session"], state["qid"], rater))
    return (
        gr.Markdown(_progress_text(judging, state["session"], rater, graded, len(state["docs"]))),
        gr.Markdown(f"Saved document {index + 1}."),
    )


def _session_block(resources: AppResources):
    collections = list(resources.service.collections)
    default = "stamps" if "stamps" in collections else collections[0]
    choices = resources.retriever_choices(default)
    with gr.Row():
        session = gr.Dropdown([], value=None, label="Your sessions", elem_id="judge-session", scale=2)
        open_button = gr.Button("Open", elem_id="judge-open", scale=0, min_width=100)
        code = gr.Textbox(label="Join a session with the code its owner gave you", elem_id="judge-join-code", scale=2)
        join = gr.Button("Join", elem_id="judge-join", scale=0, min_width=100)
    with gr.Accordion("New session", open=False) as new_session:
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
    return session, open_button, (code, join), new_session, (name, collection, retrievers, k, create)


def _manage_block():
    with gr.Accordion("Manage session (owner)", open=True):
        manage = gr.Markdown(elem_id="judge-manage")
        with gr.Row():
            sure = gr.Checkbox(label="I want to delete this session, its queries and every grade", scale=2)
            delete = gr.Button("Delete session", variant="stop", elem_id="judge-delete", scale=0, min_width=160)
    return manage, sure, delete


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


def build_judge_tab(
    demo: gr.Blocks, resources: AppResources, judging: JudgingService, identity_bar: IdentityBar
) -> gr.Dropdown:
    identity: Identity = resources.identity
    who = identity_bar.who
    session, open_button, (code, join), new_session, creation = _session_block(resources)
    manage, sure, delete = _manage_block()
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
    private = dict(api_visibility="private")

    # Each handler resolves the rater itself, from the page's server-side identity or the sign-in.
    def rated(fn):
        return as_rater(identity, fn)

    def show_first(rater, session_name):
        return _show(judging, session_name, 1, rater)

    def step(offset):
        return rated(lambda rater, st: _show(judging, st.get("session"), st.get("position", 1) + offset, rater))

    def manage_text(profile: gr.OAuthProfile | None, request: gr.Request, session_name: str | None, current: dict):
        return _manage_text(judging, session_name, identity.rater(current, profile), request)

    def my_sessions(profile: gr.OAuthProfile | None, request: gr.Request, current: dict):
        """The rater's sessions; a ?join=<code> link joins (and opens) that session first."""
        rater = identity.rater(current, profile)
        link_code = dict(getattr(request, "query_params", {}) or {}).get("join")
        if rater and link_code:
            return _join(judging, rater, link_code)
        return gr.Dropdown(choices=judging.session_names(rater), value=None), gr.skip()

    def then_show(event):
        event.then(rated(show_first), [who, session], view_outputs, **private).then(
            manage_text, [session, who], manage, **private
        )

    for event in identity_bar.changed:
        then_show(event.then(my_sessions, [who], [session, status], **private))
    name, collection, retrievers, k, create = creation
    created = create.click(
        rated(lambda rater, *a: _create(judging, rater, *a)),
        [who, name, collection, retrievers, k],
        [session, status, new_session],
        **private,
    )
    then_show(created)
    then_show(join.click(rated(lambda rater, c: _join(judging, rater, c)), [who, code], [session, status], **private))
    for opened in (open_button.click, session.input):
        then_show(opened(lambda: None, None, None, **private))
    then_show(
        delete.click(
            rated(lambda rater, s, yes: _delete(judging, rater, s, yes)),
            [who, session, sure],
            [session, status],
            **private,
        )
    )
    query_inputs = [lines, query_file, images]
    add.click(
        rated(lambda rater, *a: _add(judging, rater, *a)),
        [who, session, *query_inputs],
        [status, *query_inputs],
        **private,
    ).then(
        rated(lambda rater, s, st: _show(judging, s, st.get("position", 1) if st.get("session") == s else 1, rater)),
        [who, session, state],
        view_outputs,
        **private,
    )
    previous.click(step(-1), [who, state], view_outputs, **private)
    following.click(step(+1), [who, state], view_outputs, **private)
    for index, (_, _, _, grade) in enumerate(cards):
        grade.input(
            rated(lambda rater, value, st, index=index: _grade(judging, index, value, st, rater)),
            [who, grade, state],
            [progress, status],
            **private,
        )
    return session
