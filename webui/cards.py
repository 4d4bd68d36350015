"""What the Search tab shows, as plain values and Markdown strings: no widgets here, so it is testable alone.

A search result lives in the session state as JSON-able dicts (``column_record``); what a column
displays is always ``displayed_hits(column, modality_filter)``, the one function both the cards and
the rating handler read, so a grade given after filtering lands on the hit that was shown.
"""

from __future__ import annotations

import html

from mmr.retrievers import RETRIEVERS
from mmr.service import RetrieverResult
from mmr.types import Document

# value -> the document modality it keeps (None: everything)
MODALITY_FILTERS: dict[str, str | None] = {"all": None, "images": "image", "texts": "text"}
MODALITY_CHOICES = [("All", "all"), ("Images", "images"), ("Texts", "texts")]
CARD_TEXT_CHARS = 140
CARD_TERMS = 4  # shared sparse words on a card; the detail view lists them all
TOP_WORDS = 5  # each side's heaviest words in the detail view, with their weights
CARD_BORROWED = 2  # borrowed captions on a card; the detail view lists them all

# Injected into <head> by the tab itself, so the tab brings its own look wherever it is mounted.
# Gradio renders a Group as two nested divs with the same id and classes: the inner twin is reset.
SEARCH_CSS = """
.result-card { padding: 4px !important; margin-bottom: 6px; }
.result-card .result-card, #doc-detail #doc-detail { padding: 0 !important; margin: 0 !important;
  border: none !important; }
.result-card .prose, .result-card .prose p { font-size: 13px !important; line-height: 1.35 !important; }
.result-card .prose p { margin: 0 0 2px 0 !important; }
.result-card img { object-fit: contain; }
.result-column { border-left: 1px solid var(--border-color-primary); padding-left: 6px; }
.column-header h3 { margin: 0 0 2px 0 !important; }
.also-badge { display: inline-block; margin-top: 2px; padding: 0 5px; border-radius: 8px; font-size: 11px;
  background: var(--color-accent-soft); border: 1px solid var(--color-accent); color: var(--body-text-color); }
.grade .wrap { gap: 2px !important; }
.grade label { padding: 1px 5px !important; font-size: 11px !important; }
.detail-button, #doc-detail-close { border: 1px solid var(--border-color-primary) !important;
  border-radius: 4px !important; background: var(--background-fill-primary) !important; }
.detail-button { font-size: 11px !important; padding: 1px 10px !important; width: fit-content !important;
  min-width: 0 !important; align-self: flex-end; margin: 2px 4px 2px auto; }
#doc-detail { border: 2px solid var(--color-accent) !important; padding: 8px !important; }
#doc-detail-text { overflow-wrap: anywhere; }
"""


def label_of(retriever: str) -> str:
    spec = RETRIEVERS.get(retriever)
    return spec.label if spec else retriever


def column_record(result: RetrieverResult, documents: dict[str, Document]) -> dict:
    """One retriever's answer as the session state keeps it; ``documents`` maps every hit's doc_id."""
    return {
        "retriever": result.retriever,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "hits": [
            {
                "doc_id": h.doc_id,
                "score": h.score,
                "rank": h.rank,
                "modality": documents[h.doc_id].modality,
                **({"explanation": result.explanations[h.doc_id]} if h.doc_id in result.explanations else {}),
            }
            for h in result.hits
        ],
    }


def displayed_hits(column: dict, modality_filter: str | None, limit: int) -> list[dict]:
    """The hits a column shows under a filter, in rank order; the cards and the ratings both use it."""
    keep = MODALITY_FILTERS.get(modality_filter or "all")
    return [hit for hit in column["hits"] if keep is None or hit["modality"] == keep][:limit]


def ranks_elsewhere(columns: list[dict], doc_id: str, skip: int | None = None) -> list[tuple[str, int, float]]:
    """(retriever label, rank, score) for every column but ``skip`` that returned ``doc_id``."""
    found = []
    for index, column in enumerate(columns):
        if index == skip:
            continue
        for hit in column["hits"]:
            if hit["doc_id"] == doc_id:
                found.append((label_of(column["retriever"]), hit["rank"], hit["score"]))
                break
    return found


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def card_markdown(doc: Document, hit: dict, elsewhere: list[tuple[str, int, float]]) -> str:
    category = doc.metadata.get("category", "")
    head = f"**#{hit['rank']}** · {hit['score']:.3f} · {doc.modality}"
    if category:
        head += f" · {html.escape(category)}"
    text = html.escape(_clip(doc.text, CARD_TEXT_CHARS)) if doc.text else ""
    lines = [head, text]
    explanation = hit.get("explanation") or {}
    shared = explanation.get("shared_terms")
    if shared:
        terms = ", ".join(html.escape(t["term"]) for t in shared[:CARD_TERMS])
        lines.append(f'<span title="terms the query and this document share, heaviest first">shared: {terms}</span>')
    borrowed = explanation.get("borrowed_captions")
    if borrowed:
        captions = "; ".join(html.escape(_clip(b["caption"], 40)) for b in borrowed[:CARD_BORROWED])
        tip = "captions of the training images that look most like this one, which its embedding adds"
        lines.append(f'<span title="{tip}">borrowed: {captions}</span>')
    if elsewhere:
        also = ", ".join(f"{html.escape(label)} #{rank}" for label, rank, _ in elsewhere)
        lines.append(f'<span class="also-badge" title="also returned by other retrievers">also: {also}</span>')
    return "  \n".join(line for line in lines if line)


def search_summary(documents: int, retrievers: int, text: str | None, has_image: bool) -> str:
    what = "your image" if has_image else f"“{html.escape(_clip(text or '', 60))}”"
    return f"Searched {documents:,} documents for {what} with {retrievers} retriever{'s' if retrievers != 1 else ''}."


def column_header(column: dict, shown: int, modality_filter: str | None) -> str:
    total = len(column["hits"])
    count = f"{total} results" if shown == total else f"{shown} of {total} shown ({modality_filter})"
    header = f"### {html.escape(label_of(column['retriever']))}\n{column['latency_ms']:.0f} ms · {count}"
    if column.get("error"):
        header += f"\n\n⚠️ {html.escape(column['error'])}"
    elif total and not shown:
        header += f"\n\nNone of its {total} results is {'an image' if modality_filter == 'images' else 'a text'}."
    return header


def document_markdown(
    doc: Document, found_by: list[tuple[str, int, float]], explanation: dict | None = None, by: str = ""
) -> str:
    """The full view of one document: text or caption, category, every metadata field, the id, and, where
    the retriever of the clicked column can say why it matched (``explanation``), its account."""
    kind = "Caption" if doc.modality == "image" else "Text"
    category = doc.metadata.get("category")
    lines = [
        f"### {doc.modality.capitalize()} document" + (f" · {html.escape(category)}" if category else ""),
        f"**{kind}:** {html.escape(doc.text) if doc.text else '(none)'}",
        "",
        f"**Id:** `{doc.id}`  ",
        f"**Modality:** {doc.modality}  ",
    ]
    if found_by:
        lines.append(
            "**Returned by:** "
            + ", ".join(f"{html.escape(label)} #{rank} (score {score:.3f})" for label, rank, score in found_by)
            + "  "
        )
    if doc.metadata:
        lines += ["", "| metadata | value |", "|---|---|"]
        lines += [
            f"| {html.escape(key)} | {html.escape(str(value)).replace('|', '&#124;')} |"
            for key, value in sorted(doc.metadata.items())
        ]
    if explanation:
        lines += ["", *explanation_markdown(explanation, by)]
    return "\n".join(lines)


def _terms(terms: list[dict]) -> str:
    return ", ".join(f"{html.escape(t['term'])} ({t['weight']:.2f})" for t in terms) or "(none)"


def explanation_markdown(explanation: dict, by: str) -> list[str]:
    """What the retriever says about the match: a sparse one's terms, or a dense image side's words."""
    if "borrowed_captions" in explanation:
        return verbalisation_markdown(explanation, by)
    return sparse_markdown(explanation, by)


def verbalisation_markdown(explanation: dict, by: str) -> list[str]:
    """The words a UniVL-DR-style model adds to an image's embedding: class names and borrowed captions."""
    lines = [
        f"#### What {html.escape(by)} reads in this image",
        f"**Class names (ImageNet, from the pixels):** {html.escape(explanation['class_names'])}",
    ]
    borrowed = explanation["borrowed_captions"]
    if not borrowed:
        return lines
    lines += [
        "",
        f"**Borrowed captions**, added at weight {explanation['borrowed_weight']:g}: the captions of the training "
        "images that look most like this one (never its own):",
        "",
        "| borrowed caption | weight |",
        "|---|---|",
    ]
    return lines + [f"| {html.escape(b['caption'])} | {b['weight']:.2f} |" for b in borrowed]


def sparse_markdown(explanation: dict, by: str) -> list[str]:
    """A sparse match laid open: the shared terms with their share of the score, then each side's top terms."""
    lines = [
        f"#### Why {html.escape(by)} matched: score {explanation['score']:.3f} from shared words",
        f"Non-zero terms: query {explanation['query_nonzeros']}, document {explanation['document_nonzeros']}.",
        "",
    ]
    if explanation["shared_terms"]:
        lines += ["| shared word | query weight | document weight | contribution |", "|---|---|---|---|"]
        lines += [
            f"| {html.escape(t['term'])} | {t['query_weight']:.2f} | {t['document_weight']:.2f} "
            f"| {t['contribution']:.3f} |"
            for t in explanation["shared_terms"]
        ]
    else:
        lines.append("No shared words.")
    other = explanation.get("other_shared") or {}
    if other.get("terms"):
        share = other["contribution"] / explanation["score"] if explanation["score"] else 0.0
        lines += [
            "",
            f"Other shared terms (word pieces, punctuation, stop words): {other['terms']}, "
            f"{other['contribution']:.3f} of the score ({share:.0%}).",
        ]
    return lines + [
        "",
        f"**Query's top words:** {_terms(explanation['query_terms'][:TOP_WORDS])}  ",
        f"**Document's top words:** {_terms(explanation['document_terms'][:TOP_WORDS])}",
    ]
