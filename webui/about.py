"""The Search tab's "What these retrievers are" panel: method, mechanism and served model per retriever."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmr.retrievers import RETRIEVERS
from mmr.retrievers.overview import RetrieverOverview


def retrievers_markdown(entries: Sequence[RetrieverOverview], not_configured: Mapping[str, str] | None = None) -> str:
    """A table of the loaded retrievers, then those this machine was not given what they need for."""
    waiting = [
        f"- {RETRIEVERS[name].label} (`{name}`): {need}" for name, need in sorted((not_configured or {}).items())
    ]
    if waiting:
        waiting.insert(0, "\nNot configured on this machine:\n")
    if not entries:
        return "\n".join(
            ["No retriever is loaded: run `python -m mmr build` (and `python -m mmr train NAME`).", *waiting]
        )
    rows = [
        "| retriever | re-implements | what it does | served model |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        rows.append(
            f"| {entry.label} (`{entry.name}`) | {entry.family} | {_cell(entry.description)} | {_served(entry)} |"
        )
    rows.append("")
    rows.append(
        "Dev MRR@10 is on the stamps' dev split (images only), the score each model's checkpoint was chosen by; "
        "test scores are in the README, from `python -m mmr evaluate`."
    )
    return "\n".join(rows + waiting)


def _served(entry: RetrieverOverview) -> str:
    if not entry.trained:
        return "no training"
    if entry.manifest is None:
        return f"not trained: `python -m mmr train {entry.name}`"
    manifest = entry.manifest
    # a baseline with a manifest (borrowed captions) built its pool from the training data; it learned nothing
    made = "built" if entry.family == "baseline" else "trained"
    return f"dev MRR@10 {manifest.dev_mrr_at_10:.3f}, {made} {manifest.date[:10]} in {manifest.train_seconds:.0f} s"


def _cell(text: str) -> str:
    # a "|" would end the table cell; "<" and ">" would be read as HTML (MARVEL's <im_start> markers)
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
