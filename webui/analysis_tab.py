"""Analysis tab: a session's metrics, plots, hard queries, rater agreement, exports and imports.

Every number comes from ``mmr.judging.analysis.analyse``; this file only formats it. The metric
table carries data-retriever / data-metric attributes so that tests read what a person reads.
"""

from __future__ import annotations

import html
import math
import tempfile
from pathlib import Path

import gradio as gr

from mmr.judging import Analysis, JudgingService, analyse, import_qrels
from mmr.judging.exports import safe_name, write_exports
from mmr.judging.plots import grade_mix, metric_bars, query_heatmap
from mmr.retrievers import RETRIEVERS
from webui.identity import Identity, IdentityBar, as_rater

REL_CHOICES = [("grade ≥ 1 (related)", 1), ("grade ≥ 2 (relevant)", 2), ("grade ≥ 3 (perfect)", 3)]
ANALYSIS_CSS = """
#analysis-table table { border-collapse: collapse; }
#analysis-table th, #analysis-table td { padding: 4px 10px; border-bottom: 1px solid var(--border-color-primary); }
#analysis-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
/* Gradio's prose tables break anywhere, so narrow columns split "qid" or "BM25" mid-word: wrap at spaces only. */
#analysis-disagreements table, #analysis-all-fail table { word-break: normal; overflow-wrap: normal; }
"""


def _label(retriever: str) -> str:
    return RETRIEVERS[retriever].label if retriever in RETRIEVERS else retriever


def _number(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def metrics_table(analysis: Analysis) -> str:
    columns = [*analysis.metric_names, f"unjudged@{analysis.k}"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["retriever", *columns, "judged queries"])
    rows = []
    for retriever, means in analysis.means.items():
        cells = "".join(f'<td class="num" data-metric="{html.escape(c)}">{_number(means[c])}</td>' for c in columns)
        rows.append(
            f'<tr data-retriever="{html.escape(retriever)}"><td>{html.escape(_label(retriever))}</td>{cells}'
            f'<td class="num">{len(analysis.evaluated)}</td></tr>'
        )
    return f'<table id="metrics-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _query_list(title: str, notes, retrievers, what: str, empty: str, digits: int = 3) -> str:
    if not notes:
        return f"**{title}**: {empty}"
    head = "| qid | query | " + " | ".join(_label(r) for r in retrievers) + " |"
    lines = [f"**{title}** ({what})", "", head, "|---|---|" + "---|" * len(retrievers)]
    for note in notes:
        values = " | ".join("–" if math.isnan(note.values[r]) else f"{note.values[r]:.{digits}f}" for r in retrievers)
        lines.append(f"| `{html.escape(note.qid)}` | {html.escape(note.text[:80])} | {values} |")
    return "\n".join(lines)


def agreement_text(analysis: Analysis) -> str:
    agreement = analysis.agreement
    humans = ", ".join(html.escape(r) for r in agreement.raters) or "nobody"
    if len(agreement.raters) < 2:
        return f"**Agreement**: raters chosen: {humans}. Agreement needs two raters who graded the same documents."
    lines = [
        f"**Agreement** between {humans} on the {agreement.items} documents all of them graded "
        "(\"can't judge\" left out): Krippendorff's α (ordinal) = " + _number(agreement.alpha)
    ]
    if agreement.kappa is not None:
        lines[0] += f", Cohen's κ (unweighted) = {_number(agreement.kappa)}"
    if len(agreement.raters) > 2:
        lines += ["", "| rater | rater | Cohen's κ | documents both graded |", "|---|---|---|---|"]
        lines += [
            f"| {html.escape(a)} | {html.escape(b)} | {_number(k)} | {n} |"
            for (a, b), (k, n) in agreement.pairwise.items()
        ]
    return "\n".join(lines)


def imports_table(analysis: Analysis) -> str:
    """Each import source scored on its own qrels: beside the people's numbers, never mixed into them."""
    if not analysis.by_import:
        return ""
    metric = analysis.metric_names
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["imported judgments", "retriever", *metric])
    rows = []
    for title, by_retriever in analysis.by_import.items():
        for retriever, means in by_retriever.items():
            cells = "".join(f'<td class="num">{_number(means[c])}</td>' for c in metric)
            rows.append(f"<tr><td>{html.escape(title)}</td><td>{html.escape(_label(retriever))}</td>{cells}</tr>")
    return f'<table id="imports-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


EMPTY = ["", "", None, None, None, "", "", "", ""]


def _analyse(judging: JudgingService, rater, session, rel, raters) -> list:
    """[status, table, bars, mix, heatmap, disagreements, all fail, agreement, imports table]"""
    if not session or not rater:
        return ["Pick one of your sessions.", *EMPTY[1:]]
    try:
        data = judging.session_data(session, rater)
    except ValueError as err:
        return [f"⚠️ {html.escape(str(err))}", *EMPTY[1:]]
    chosen = [r for r in raters or [] if r in data.raters()] or None  # none ticked: the people
    analysis = analyse(data, int(rel), chosen)
    labels = {r: _label(r) for r in data.retrievers}
    metric = analysis.metric_names[1]
    whose = ", ".join(html.escape(data.title(r)) for r in analysis.raters) or "nobody yet"
    status = (
        f"{len(data.qids)} queries, {len(analysis.evaluated)} with judgments; relevant = grade ≥ {analysis.rel}; "
        f"one qrel per document = lower median of the grades of: {whose}."
    )
    return [
        status,
        metrics_table(analysis),
        metric_bars(analysis, labels),
        grade_mix(analysis, labels),
        query_heatmap(analysis, data.query_texts, labels),
        _query_list(
            "Where the retrievers disagree most",
            analysis.disagreements,
            data.retrievers,
            metric,
            "no query where they differ yet.",
        ),
        _query_list(
            "Where every retriever fails",
            analysis.all_fail,
            data.retrievers,
            f"nothing graded ≥ {analysis.rel} in any top {analysis.k}; best grade each found, – if none judged",
            "none: on every judged query some retriever found a relevant document.",
            digits=0,
        ),
        agreement_text(analysis),
        imports_table(analysis),
    ]


def _raters(judging: JudgingService, rater, session):
    """The people ticked, the import sources listed (by name and date) but not ticked."""
    if not session or not rater:
        return gr.CheckboxGroup(choices=[], value=[])
    try:
        data = judging.session_data(session, rater)
    except ValueError:
        return gr.CheckboxGroup(choices=[], value=[])
    choices = [(data.title(r), r) for r in data.humans()] + [(t, r) for r, t in data.imports.items()]
    return gr.CheckboxGroup(choices=choices, value=data.humans())


def _export(judging: JudgingService, rater, session, rel, raters):
    if not session or not rater:
        return None, "⚠️ Pick one of your sessions first."
    try:
        data = judging.session_data(session, rater)
    except ValueError as err:
        return None, f"⚠️ {html.escape(str(err))}"
    folder = Path(tempfile.mkdtemp(prefix=f"mmr-export-{safe_name(session)}-"))
    chosen = [r for r in raters or [] if r in data.raters()] or None
    paths = write_exports(data, analyse(data, int(rel), chosen), folder)
    return [str(p) for p in paths], f"Wrote {len(paths)} files: qrels, one run per retriever, raw judgments (CSV)."


def _import(judging: JudgingService, rater, session, qrels_file, queries_file, label):
    if not qrels_file or not queries_file:
        return "⚠️ Upload the qrels file and the queries file whose qids it uses."
    if not session or not rater:
        return "⚠️ Pick the session (one you own) to import into."
    try:
        result = import_qrels(judging, qrels_file, queries_file, session, rater, (label or "").strip() or None)
    except ValueError as err:
        return f"⚠️ {html.escape(str(err))}"
    unknown = f"; {result.unknown_docs} judged documents are not in the collection" if result.unknown_docs else ""
    return (
        f"Imported {result.judgments} judgments of {result.queries} queries as **{html.escape(result.source)}** "
        f"({result.added_to_session} queries added to {html.escape(session)}){unknown}. Imports are scored apart "
        "from the people's grades; tick them under the raters to count them in."
    )


def build_analysis_tab(judging: JudgingService, identity: Identity, identity_bar: IdentityBar) -> gr.Dropdown:
    who = identity_bar.who
    with gr.Row():
        session = gr.Dropdown([], value=None, label="Session", elem_id="analysis-session")
        rel = gr.Radio(REL_CHOICES, value=2, label="Relevant means", elem_id="analysis-rel")
        raters = gr.CheckboxGroup([], label="Raters whose grades count", elem_id="analysis-raters")
        run = gr.Button("Analyse", variant="primary", elem_id="analysis-run", scale=0, min_width=120)
    status = gr.Markdown(elem_id="analysis-status")
    table = gr.HTML(elem_id="analysis-table")
    with gr.Row():
        bars = gr.Plot(label="metrics", elem_id="analysis-bars")
        mix = gr.Plot(label="grades in the top k", elem_id="analysis-mix")
    heatmap = gr.Plot(label="per query", elem_id="analysis-heatmap")
    with gr.Row():
        disagreements = gr.Markdown(elem_id="analysis-disagreements")
        all_fail = gr.Markdown(elem_id="analysis-all-fail")
    agreement = gr.Markdown(elem_id="analysis-agreement")
    imported = gr.HTML(elem_id="analysis-imports")
    with gr.Accordion("Export and import", open=True):
        with gr.Row():
            export = gr.Button("Export qrels, runs and judgments", elem_id="analysis-export")
            files = gr.File(label="exported files", file_count="multiple", interactive=False, elem_id="analysis-files")
        with gr.Row():
            qrels_file = gr.File(label="qrels to import (qid 0 doc grade)", type="filepath", elem_id="import-qrels")
            queries_file = gr.File(label="its queries (qid<TAB>text)", type="filepath", elem_id="import-queries")
            with gr.Column():
                label = gr.Textbox(label="name of this import (default: the file's name)", elem_id="import-label")
                do_import = gr.Button("Import into this session (owner)", elem_id="import-run")
        io_status = gr.Markdown(elem_id="analysis-io-status")
    outputs = [status, table, bars, mix, heatmap, disagreements, all_fail, agreement, imported]
    private = dict(api_visibility="private")

    def rated(fn):
        return as_rater(identity, fn)

    compute = rated(lambda rater, *a: _analyse(judging, rater, *a))
    pick_raters = rated(lambda rater, s: _raters(judging, rater, s))
    session.input(pick_raters, [who, session], raters, **private).then(
        compute, [who, session, rel, raters], outputs, **private
    )
    run.click(compute, [who, session, rel, raters], outputs, **private)
    export.click(
        rated(lambda rater, *a: _export(judging, rater, *a)), [who, session, rel, raters], [files, io_status], **private
    )
    do_import.click(
        rated(lambda rater, *a: _import(judging, rater, *a)),
        [who, session, qrels_file, queries_file, label],
        io_status,
        **private,
    ).then(pick_raters, [who, session], raters, **private).then(
        compute, [who, session, rel, raters], outputs, **private
    )
    return session
