"""The served sparse model's quality against its cost when its vectors are pruned, on the dev queries only.

Each query keeps its heaviest QUERY terms (what ``LSRConfig.query_terms`` does at search time) and each
document its heaviest DOCUMENT terms (static index pruning, which the served model does not do). For every
pair of cuts and both dev settings this prints the dev MRR@10, its share of the dense teacher's, and the
postings a query's lists hold as a share of the teacher's multiply-adds (documents x dimensions). Nothing
is saved. Run after `python -m mmr train lsr` (about a minute):

    PYTHONPATH=. .venv/bin/python scripts/sparse_pruning_sweep.py
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from mmr.config import Settings
from mmr.methods.lsr.dev import dev_probes
from mmr.methods.lsr.model import LSRModel, prune_rows
from mmr.methods.lsr.training import NAME
from mmr.retrievers.base import Resources

CUTS = (None, 256, 128, 64)  # None keeps every term


def postings_per_query(queries: sp.csr_matrix, documents: sp.csr_matrix) -> float:
    document_frequency = np.bincount(documents.indices, minlength=documents.shape[1])
    return float(np.mean([document_frequency[queries[i].indices].sum() for i in range(queries.shape[0])]))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    settings = Settings()
    if not (settings.models_dir / NAME / "manifest.json").exists():
        raise SystemExit("no trained sparse model: run `python -m mmr train lsr` first")
    resources = Resources(settings)
    model = LSRModel.load(settings.models_dir / NAME, resources)
    columns = (
        "dev setting",
        "document terms kept",
        "query terms kept",
        "dev MRR@10",
        "share of the teacher's",
        "postings per query, share of the dense work",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for probe in dev_probes(settings, resources, model.teacher, model.vocabulary):
        queries, documents = (sp.csr_matrix(m.numpy()) for m in probe.encode(model.head, model.config.expand_texts))
        dense_work = probe.documents.numel()
        for document_cut in CUTS:
            kept_documents = prune_rows(documents, document_cut)
            for query_cut in CUTS:
                kept_queries = prune_rows(queries, query_cut)
                mrr = probe.mrr(kept_queries, kept_documents)
                postings = postings_per_query(kept_queries, kept_documents)
                print(
                    f"| {probe.name} | {document_cut or 'all'} | {query_cut or 'all'} | {mrr:.3f} | "
                    f"{mrr / probe.teacher_mrr:.1%} | {postings:,.0f} ({postings / dense_work:.0%}) |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
