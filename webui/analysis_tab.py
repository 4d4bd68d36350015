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


def _analyse(judging: JudgingService, session, rel, raters) -> list:
    """[status, table, bars, mix, heatmap, disagreements, all fail, agreement]"""
    if not session:
        return ["Pick a session.", "", None, None, None, "", "", ""]
    try:
        data = judging.session_data(session)
    except ValueError as err:
        return [f"⚠️ {err}", "", None, None, None, "", "", ""]
    analysis = analyse(data, int(rel), raters or None)  # none ticked: everybody
    labels = {r: _label(r) for r in data.retrievers}
    metric = analysis.metric_names[1]
    status = (
        f"{len(data.qids)} queries, {len(analysis.evaluated)} with judgments; relevant = grade ≥ {analysis.rel}; "
        f"one qrel per document = lower median of the chosen raters' grades."
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
    ]


def _raters(judging: JudgingService, session):
    if not session:
        return gr.CheckboxGroup(choices=[], value=[])
    raters = judging.session_data(session).raters()
    return gr.CheckboxGroup(choices=raters, value=raters)


def _export(judging: JudgingService, session, rel, raters):
    if not session:
        return None, "⚠️ Pick a session first."
    data = judging.session_data(session)
    folder = Path(tempfile.mkdtemp(prefix=f"mmr-export-{safe_name(session)}-"))
    paths = write_exports(data, analyse(data, int(rel), raters or None), folder)
    return [str(p) for p in paths], f"Wrote {len(paths)} files: qrels, one run per retriever, raw judgments (CSV)."


def _import(judging: JudgingService, session, qrels_file, queries_file, rater, add_to_session):
    if not qrels_file or not queries_file:
        return "⚠️ Upload the qrels file and the queries file whose qids it uses."
    if add_to_session and not session:
        return "⚠️ Pick the session to add the queries to (or untick the box)."
    try:
        result = import_qrels(
            judging, qrels_file, queries_file, (rater or "").strip() or None, session if add_to_session else None
        )
    except ValueError as err:
        return f"⚠️ {err}"
    extra = f"; {result.added_to_session} queries added to {html.escape(session)}" if add_to_session else ""
    unknown = f"; {result.unknown_docs} judged documents are not in the collection" if result.unknown_docs else ""
    return f"Imported {result.judgments} judgments of {result.queries} queries as `{result.rater}`{extra}{unknown}."


def build_analysis_tab(judging: JudgingService) -> gr.Dropdown:
    with gr.Row():
        session = gr.Dropdown(judging.session_names(), value=None, label="Session", elem_id="analysis-session")
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
    with gr.Accordion("Export and import", open=True):
        with gr.Row():
            export = gr.Button("Export qrels, runs and judgments", elem_id="analysis-export")
            files = gr.File(label="exported files", file_count="multiple", interactive=False, elem_id="analysis-files")
        with gr.Row():
            qrels_file = gr.File(label="qrels to import (qid 0 doc grade)", type="filepath", elem_id="import-qrels")
            queries_file = gr.File(label="its queries (qid<TAB>text)", type="filepath", elem_id="import-queries")
            with gr.Column():
                rater = gr.Textbox(label="stored as rater (default import:<file name>)", elem_id="import-rater")
                add_to_session = gr.Checkbox(True, label="also add its queries to this session (pooled now)")
                do_import = gr.Button("Import", elem_id="import-run")
        io_status = gr.Markdown(elem_id="analysis-io-status")
    outputs = [status, table, bars, mix, heatmap, disagreements, all_fail, agreement]
    private = dict(api_visibility="private")

    def compute(*args):
        return _analyse(judging, *args)

    session.input(lambda s: _raters(judging, s), session, raters, **private).then(
        compute, [session, rel, raters], outputs, **private
    )
    run.click(compute, [session, rel, raters], outputs, **private)
    export.click(lambda *a: _export(judging, *a), [session, rel, raters], [files, io_status], **private)
    do_import.click(
        lambda *a: _import(judging, *a),
        [session, qrels_file, queries_file, rater, add_to_session],
        io_status,
        **private,
    ).then(lambda s: _raters(judging, s), session, raters, **private).then(
        compute, [session, rel, raters], outputs, **private
    )
    return session
