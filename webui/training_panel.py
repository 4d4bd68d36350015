"""Beside the retriever picker: which methods are still training, how far, and what failed.

Rendered from the trainer's status file (mmr.training.status) and the service's loaded releases; the
Search tab re-renders it on a timer while something is training, and adds each method to the picker
as soon as the app has loaded it. The panel's Gradio pieces (the panel, its timer, the tick that refreshes
both and the picker) are below the rendering; search_tab.py wires them to its events.
"""

from __future__ import annotations

import html
import time

import gradio as gr

from mmr.retrievers import RETRIEVERS
from mmr.training.status import DONE, FAILED, INTERRUPTED, QUEUED, RUNNING, SKIPPED, PipelineStatus, read_status
from webui.context import AppResources

TRAINING_REFRESH_SECONDS = 2.0

TRAINING_CSS = """
#training-status .training-row { display: flex; gap: 8px; align-items: center; font-size: 13px; margin: 2px 0; }
#training-status .training-name { min-width: 190px; font-weight: 600; }
#training-status .training-bar { display: inline-block; width: 160px; height: 10px; border-radius: 5px;
  background: var(--neutral-200, #e5e7eb); overflow: hidden; vertical-align: middle; }
#training-status .training-bar > span { display: block; height: 100%;
  background: var(--color-accent, #f97316); }
#training-status .training-failed { color: var(--error-text-color, #b91c1c); }
#training-status code { font-size: 12px; }
"""


def _label(name: str) -> str:
    spec = RETRIEVERS.get(name)
    return html.escape(spec.label if spec else name.capitalize())


def _row(name: str, body: str, css: str = "") -> str:
    return f'<div class="training-row {css}"><span class="training-name">{_label(name)}</span>{body}</div>'


def _running(name: str, method, now: float) -> str:
    fraction = method.fraction or 0.0
    bar = (
        f'<span class="training-bar" role="progressbar" aria-valuenow="{fraction:.3f}">'
        f'<span style="width: {fraction:.1%}"></span></span>'
    )
    stage = html.escape(method.stage or "starting")
    done = f"{method.done:.0f}/{method.total:.0f}" if method.total else ""
    elapsed = f"{now - method.started:.0f} s" if method.started else ""
    return _row(name, f"training · {stage} {bar} {done} · {elapsed}")


def _failed(name: str, method) -> str:
    parts = [f"{method.state}: {html.escape(method.error)}"]
    if method.log_line and method.log_line not in method.error:
        parts.append(f"<br>last log line: <code>{html.escape(method.log_line[:300])}</code>")
    if method.log:
        parts.append(f"<br>log: <code>{html.escape(method.log)}</code>")
    parts.append(f"<br>to retry: <code>{html.escape(method.command)}</code>")
    return _row(name, "<span>" + "".join(parts) + "</span>", "training-failed")


def training_html(status: PipelineStatus | None, loaded: set[str], now: float | None = None) -> str:
    """The panel for ``status`` (None: no trainer ever ran here); empty once nothing is left to say."""
    now = now or time.time()
    trained = [name for name, spec in RETRIEVERS.items() if spec.trainer]
    rows = []
    methods = status.methods if status else {}
    if status and status.alive and status.preparing is not None:
        rows.append(_running("training data", status.preparing, now).replace("training · ", "preparing · ", 1))
    for name, method in methods.items():
        if method.state == RUNNING:
            rows.append(_running(name, method, now))
        elif method.state == QUEUED:
            rows.append(_row(name, "waiting to train"))
        elif method.state in (FAILED, SKIPPED, INTERRUPTED):
            rows.append(_failed(name, method))
        elif method.state == DONE and name not in loaded:
            rows.append(_row(name, "trained; loading into the app"))
    missing = [name for name in trained if name not in loaded and name not in methods]
    if missing:
        names = ", ".join(_label(name) for name in missing)
        rows.append(
            f'<div class="training-row">Not trained here: {names}. '
            "<code>python -m mmr train-all</code> trains them (the app brings them in when each is done).</div>"
        )
    if not rows:
        return ""
    head = ""
    if status and status.active():
        done = sum(m.state == DONE for m in methods.values())
        minutes = (now - status.started) / 60
        head = (
            f"Training in the background: {done} of {len(methods)} methods done, {minutes:.0f} min so far. "
            "Each joins the retriever list above when it is ready."
        )
    return (f"<div>{head}</div>" if head else "") + "".join(rows)


def training_active(status: PipelineStatus | None) -> bool:
    return bool(status and status.alive and status.active())


# ----------------------------------------------------------------------------- the panel in the Search tab


def loaded_methods(resources: AppResources) -> set[str]:
    return {name for name, _ in resources.service.retrievers}


def training_panel(resources: AppResources) -> tuple[gr.HTML, gr.Timer]:
    # Both as of each page load: the panel's value is computed then, and the timer ticks at least once,
    # which brings the picker up to date and stops the timer when nothing trains.
    panel = gr.HTML(
        lambda: training_html(read_status(resources.settings), loaded_methods(resources)),
        elem_id="training-status",
        padding=False,
    )
    return panel, gr.Timer(TRAINING_REFRESH_SECONDS, active=True)


def picker_now(resources: AppResources, collection: str):
    choices = resources.retriever_choices(collection) if collection in resources.service.collections else []
    return gr.CheckboxGroup(choices=choices), [name for _, name in choices]


def training_tick(resources: AppResources, collection: str, shown: list | None):
    """The panel, the picker's choices if methods came in since ``shown``, and whether to keep ticking."""
    status = read_status(resources.settings)
    picker, names = picker_now(resources, collection)
    if names == shown:
        picker = gr.skip()
    loaded = loaded_methods(resources)
    panel = training_html(status, loaded)
    # a release published in the last moments is loaded on the watcher's next turn: tick until it is in
    pending = status is not None and any(m.state == DONE and name not in loaded for name, m in status.methods.items())
    return panel, picker, names, gr.Timer(active=training_active(status) or pending)
