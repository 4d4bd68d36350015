"""Plotly figures of an ``Analysis``: what a person would rather look at than read."""

from __future__ import annotations

from mmr.judging.analysis import Analysis

GRADE_COLOURS = {"unjudged": "#c7c7c7", "0": "#d62728", "1": "#ff9f4a", "2": "#98df8a", "3": "#2ca02c"}


def metric_bars(analysis: Analysis, labels: dict[str, str] | None = None):
    """One group of bars per metric, one bar per retriever."""
    import plotly.graph_objects as go

    labels = labels or {}
    figure = go.Figure()
    names = [*analysis.metric_names, f"unjudged@{analysis.k}"]
    for retriever, means in analysis.means.items():
        values = [means[name] for name in names]
        figure.add_bar(
            name=labels.get(retriever, retriever),
            x=names,
            y=values,
            text=[f"{v:.3f}" for v in values],
            textposition="outside",
        )
    figure.update_layout(
        barmode="group",
        yaxis_range=[0, 1.1],
        height=360,
        margin=dict(t=40, b=40, l=40, r=10),
        title=f"Per retriever ({len(analysis.evaluated)} judged queries, relevant = grade ≥ {analysis.rel})",
        legend_orientation="h",
        legend_y=-0.15,
    )
    return figure


def query_heatmap(analysis: Analysis, query_texts: dict[str, str], labels: dict[str, str] | None = None):
    """nDCG@k of each retriever (rows) on each judged query (columns)."""
    import plotly.graph_objects as go

    labels = labels or {}
    metric = analysis.metric_names[1]
    qids = list(analysis.evaluated)
    retrievers = list(analysis.per_query)
    z = [[analysis.per_query[r][metric][qid] for qid in qids] for r in retrievers]
    hover = [[f"{qid}: {query_texts.get(qid, qid)[:60]}" for qid in qids] for _ in retrievers]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=qids,
            y=[labels.get(r, r) for r in retrievers],
            zmin=0,
            zmax=1,
            colorscale="Viridis",
            text=hover,
            texttemplate="%{z:.2f}",
            hovertemplate="%{y}<br>%{text}<br>" + metric + " %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"{metric} per query",
        height=140 + 40 * len(retrievers),
        margin=dict(t=40, b=40, l=10, r=10),
        xaxis_type="category",
    )
    return figure


def grade_mix(analysis: Analysis, labels: dict[str, str] | None = None):
    """What each retriever's top k consists of: documents by their (aggregated) grade."""
    import plotly.graph_objects as go

    labels = labels or {}
    counts = {r: dict.fromkeys(GRADE_COLOURS, 0) for r in analysis.per_query}
    for retriever in counts:
        for qid, docs in analysis.runs.get(retriever, {}).items():
            for doc_id in sorted(docs, key=lambda d: -docs[d])[: analysis.k]:
                grade = analysis.qrels.get(qid, {}).get(doc_id)
                counts[retriever]["unjudged" if grade is None else str(grade)] += 1
    figure = go.Figure()
    names = [labels.get(r, r) for r in counts]
    for grade, colour in GRADE_COLOURS.items():
        figure.add_bar(
            name=grade if grade == "unjudged" else f"grade {grade}",
            x=[counts[r][grade] for r in counts],
            y=names,
            orientation="h",
            marker_color=colour,
        )
    figure.update_layout(
        barmode="stack",
        title=f"What each top {analysis.k} holds",
        height=120 + 40 * len(names),
        margin=dict(t=40, b=30, l=10, r=10),
        legend_orientation="h",
        legend_y=-0.2,
    )
    return figure
