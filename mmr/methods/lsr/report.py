"""What the sparse retriever costs and keeps, measured on a benchmark split (``mmr evaluate`` prints it).

Queries are measured as they are searched: weights only on the terms some document of the index holds.

- sparsity: non-zero terms per query and per document (by modality);
- work: postings in the query's posting lists (what an exhaustive term-at-a-time traversal of the
  inverted index scores) against every non-zero of the collection (what scoring all documents against
  the sparse query touches without an index) and N x d multiply-adds for the dense teacher;
- exactness: how much of the inverted index's top 10 is the scipy brute-force top 10;
- co-activation (the Dense2Sparse paper's first problem): the share of all postings held by the 1%
  longest posting lists; a few terms active in almost every vector make every query pay for them;
- lexical grounding (its second, semantic deviation): how often a query's heaviest term is one of its
  own tokens, the share of its 10 heaviest terms that are, and the rank of its first own token; and
  the same two shares counting WordNet relatives of its words (synonyms, direct hypernyms and hyponyms)
  as its own, since a term like "canine" for "dog" expands the query without leaving its meaning;
- quality: MRR@10 of the sparse retriever as a share of its teacher's, from the evaluation runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from mmr.corpus.format import Corpus
from mmr.methods.lsr.relatives import load_noun_relatives, own_or_related_terms

logger = logging.getLogger(__name__)

TOP = 10


def sparse_report(
    retriever,
    corpus: Corpus,
    queries: Mapping[str, str],
    k: int = TOP,
    relatives: Mapping[str, frozenset[str]] | None = None,
) -> dict:
    """Sparsity, postings and agreement with brute force of an ``LSRRetriever`` over ``queries``.

    ``relatives`` (word -> WordNet relatives, see ``relatives.noun_relatives``) defaults to the WordNet
    data named by the retriever's settings; without it the own-or-related keys are None.
    """
    index = retriever.index
    vectors = retriever.encode_text_queries(list(queries.values()))
    query_nonzeros = np.array([v.nnz for v in vectors])
    postings = np.array([index.postings_in_query_lists(v) for v in vectors])
    agreement = []
    for vector in vectors:
        approximate = {hit.doc_id for hit in retriever.search_vector(vector, k)}
        exact = {hit.doc_id for hit in index.search_exact(vector, k)}
        if exact:
            agreement.append(len(approximate & exact) / len(exact))
    own_terms = retriever.model.vocabulary.own_terms(list(queries.values()))
    if relatives is None:
        relatives = _wordnet_relatives(retriever)
    related_terms = (
        None
        if relatives is None
        else own_or_related_terms(retriever.model.vocabulary, list(queries.values()), relatives)
    )
    doc_nonzeros = np.diff(index.forward.indptr)
    modality = np.array([corpus[doc_id].modality for doc_id in index.ids])
    return {
        "queries": len(vectors),
        "query_nonzeros_mean": float(query_nonzeros.mean()) if len(vectors) else 0.0,
        "query_nonzeros_median": float(np.median(query_nonzeros)) if len(vectors) else 0.0,
        "document_nonzeros_mean": {
            kind: float(doc_nonzeros[modality == kind].mean()) for kind in ("image", "text") if (modality == kind).any()
        },
        "documents": len(index),
        "vocabulary": int(index.forward.shape[1]),
        "postings_per_query_mean": float(postings.mean()) if len(vectors) else 0.0,
        "collection_nonzeros": int(index.forward.nnz),
        "dense_multiply_adds": len(index) * int(retriever.model.config.in_dim),  # the teacher's dimension
        "top10_agreement_with_brute_force": float(np.mean(agreement)) if agreement else 1.0,
        "heaviest_term_is_own_token": heaviest_term_is_own(vectors, own_terms),
        "top10_terms_own_share": top_terms_own_share(vectors, own_terms, TOP),
        "first_own_token_rank_median": first_own_rank_median(vectors, own_terms),
        "heaviest_term_is_own_or_related": None
        if related_terms is None
        else heaviest_term_is_own(vectors, related_terms),
        "top10_terms_own_or_related_share": None
        if related_terms is None
        else top_terms_own_share(vectors, related_terms, TOP),
        "postings_share_of_longest_1pct_lists": longest_lists_share(index.document_frequency, 0.01),
    }


def _wordnet_relatives(retriever) -> Mapping[str, frozenset[str]] | None:
    settings = getattr(getattr(retriever, "resources", None), "settings", None)
    if settings is None:
        return None
    try:
        return load_noun_relatives(settings.sources.wordnet_dict)
    except FileNotFoundError as error:
        # The report is still worth reading without WordNet: only its own-or-related rows go blank.
        logger.warning("no WordNet relatives for the sparse report: %s", error)
        return None


def longest_lists_share(document_frequency: np.ndarray, fraction: float) -> float:
    """Share of all postings in the ``fraction`` longest posting lists (at least one list)."""
    lengths = np.sort(np.asarray(document_frequency)[np.asarray(document_frequency) > 0])[::-1]
    if not len(lengths):
        return 0.0
    top = max(1, int(np.ceil(fraction * len(lengths))))
    return float(lengths[:top].sum() / lengths.sum())


def _by_weight(vector) -> np.ndarray:
    return vector.indices[np.argsort(-vector.data, kind="stable")]


def top_terms_own_share(vectors, own_terms, top: int) -> float:
    """Mean over (non-empty) query vectors of the share of their ``top`` heaviest terms that are their own tokens
    (or in whatever term set ``own_terms`` gives each query: its WordNet relatives too, for instance)."""
    shares = [
        float(np.isin(_by_weight(vector)[:top], terms).mean())
        for vector, terms in zip(vectors, own_terms)
        if vector.nnz
    ]
    return float(np.mean(shares)) if shares else 0.0


def first_own_rank_median(vectors, own_terms) -> float | None:
    """Median over queries of the rank (1 = heaviest) of the first own token among a query's terms; a query
    none of whose tokens carries weight is left out (None when no query has one)."""
    ranks = []
    for vector, terms in zip(vectors, own_terms):
        hits = np.flatnonzero(np.isin(_by_weight(vector), terms))
        if len(hits):
            ranks.append(int(hits[0]) + 1)
    return float(np.median(ranks)) if ranks else None


def heaviest_term_is_own(vectors, own_terms) -> float:
    """Share of (non-empty) query vectors whose heaviest term is one of the query's own tokens (or in ``own_terms``)."""
    hits = [
        int(vector.indices[np.argmax(vector.data)]) in set(terms.tolist())
        for vector, terms in zip(vectors, own_terms)
        if vector.nnz
    ]
    return float(np.mean(hits)) if hits else 0.0


def report_markdown(report: dict, sparse_mrr: float | None, teacher: str, teacher_mrr: float | None) -> str:
    docs = ", ".join(f"{kind} {value:.1f}" for kind, value in report["document_nonzeros_mean"].items())
    rows = [
        (
            "non-zero terms per query (mean / median)",
            f"{report['query_nonzeros_mean']:.1f} / {report['query_nonzeros_median']:.0f} of {report['vocabulary']:,}",
        ),
        ("non-zero terms per document (mean)", docs),
        ("postings in the query's lists (mean)", f"{report['postings_per_query_mean']:,.0f}"),
        ("non-zeros in the whole collection (no index)", f"{report['collection_nonzeros']:,}"),
        (f"dense teacher: documents x dimensions ({teacher})", f"{report['dense_multiply_adds']:,}"),
        (
            "inverted index top 10 = brute-force top 10 (mean share)",
            f"{report['top10_agreement_with_brute_force']:.3f}",
        ),
        (
            "postings held by the 1% longest lists (co-activation)",
            f"{report['postings_share_of_longest_1pct_lists']:.1%}",
        ),
        (
            "query's heaviest term is one of its own tokens (share of queries)",
            f"{report['heaviest_term_is_own_token']:.2f}",
        ),
        ("query's 10 heaviest terms that are its own tokens (mean share)", f"{report['top10_terms_own_share']:.2f}"),
        (
            "rank of a query's first own token (median)",
            "none carries weight"
            if report["first_own_token_rank_median"] is None
            else f"{report['first_own_token_rank_median']:.0f}",
        ),
        (
            "query's heaviest term is its own token or a WordNet relative of its words (share of queries)",
            _share(report.get("heaviest_term_is_own_or_related")),
        ),
        (
            "query's 10 heaviest terms that are its own tokens or WordNet relatives (mean share)",
            _share(report.get("top10_terms_own_or_related_share")),
        ),
    ]
    if sparse_mrr is not None and teacher_mrr:
        rows.append(
            (
                f"MRR@10: lsr / teacher {teacher}",
                f"{sparse_mrr:.3f} / {teacher_mrr:.3f} = {sparse_mrr / teacher_mrr:.1%}",
            )
        )
    lines = ["| sparse retriever (lsr) | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "no WordNet data" if value is None else f"{value:.2f}"
