"""Probe: can a query side that runs no encoder keep the teacher's expansion through a table of every term?

Every vocabulary term is encoded alone, once, by the teacher and the served sparse head (the term's row: its
heaviest weights); a query is the sum or maximum of its own terms' rows (stop words left out or not). Searching
would then cost a tokenisation and a sparse sum. This scores every shape on dev against the served model's
documents; what it showed is in docs/findings.md ("A table of every term alone"): far below both the served
teacher queries and the learned lexical weights, so nothing of it went into the product.

Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/lsr_term_table_probe.py
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from mmr.methods.lsr.words import STOP_WORDS

POOLINGS = ("sum", "max")


@dataclass(frozen=True)
class TermTableQueries:
    """How a query is read from the table."""

    row_terms: int = 64  # each term's row keeps its heaviest weights (the table's size grows with it)
    pooling: str = "sum"  # one of POOLINGS: how the rows of a query's terms combine
    skip_stop_words: bool = True  # a stop word's row is left out, unless the query has nothing else


def term_texts(vocabulary) -> list[str]:
    """Each vocabulary term as the teacher reads it alone: a continuation piece without its "##"."""
    names = vocabulary.terms(range(vocabulary.size))
    return [name[2:] if name.startswith("##") and len(name) > 2 else name for name in names]


@torch.inference_mode()
def build_term_table(
    head, teacher, vocabulary, row_terms: int, batch_size: int = 512, progress: bool = True
) -> sp.csr_matrix:
    """(vocab, vocab) CSR: row t is the head's vector of the teacher's encoding of term t alone, kept to its
    ``row_terms`` heaviest weights; rows of terms the head may never use (special, [unused]) stay empty."""
    from tqdm.auto import tqdm

    from mmr.methods.lsr.model import keep_heaviest

    was_training = head.training
    head.eval()
    usable = np.flatnonzero(vocabulary.usable.numpy())
    texts = term_texts(vocabulary)
    rows = []
    for start in tqdm(range(0, len(usable), batch_size), desc="term table", unit="batch", disable=not progress):
        ids = usable[start : start + batch_size]
        dense = torch.from_numpy(np.asarray(teacher.encode_texts([texts[i] for i in ids]), np.float32))
        rows.append(sp.csr_matrix(keep_heaviest(head(dense), row_terms).numpy()))
    head.train(was_training)
    stacked = sp.vstack(rows, format="csr", dtype=np.float32)
    # Place row j of ``stacked`` at vocabulary id usable[j]; the other ids get empty rows.
    placement = sp.csr_matrix(
        (np.ones(len(usable), np.float32), (usable, np.arange(len(usable)))), shape=(vocabulary.size, len(usable))
    )
    return sp.csr_matrix(placement @ stacked, dtype=np.float32)


def keep_row_terms(table: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """The table with each row cut to its ``keep`` heaviest weights (a smaller table from a larger one).

    model.prune_rows does the same row by row, one vstack each: slow on a 30,522-row table."""
    table = sp.csr_matrix(table, dtype=np.float32)
    kept = np.ones(table.nnz, dtype=bool)
    for row in np.flatnonzero(np.diff(table.indptr) > keep):
        start, end = table.indptr[row], table.indptr[row + 1]
        lightest = np.argsort(-table.data[start:end], kind="stable")[keep:]
        kept[start + lightest] = False
    pruned = sp.csr_matrix(table, copy=True)
    pruned.data = np.where(kept, pruned.data, 0).astype(np.float32)
    pruned.eliminate_zeros()
    return pruned


def stop_word_ids(vocabulary) -> np.ndarray:
    names = vocabulary.terms(range(vocabulary.size))
    return np.asarray([i for i, name in enumerate(names) if name in STOP_WORDS], dtype=np.int64)


class TermTable:
    """The table and the reading of queries from it."""

    def __init__(self, table: sp.csr_matrix, vocabulary, settings: TermTableQueries):
        self.table = sp.csr_matrix(table, dtype=np.float32)
        self.vocabulary = vocabulary
        self.settings = settings
        self._stop = stop_word_ids(vocabulary) if settings.skip_stop_words else np.zeros(0, np.int64)

    def terms_read(self, terms: np.ndarray) -> np.ndarray:
        """The query terms whose rows count: its own terms less the stop words, unless that leaves none."""
        kept = np.setdiff1d(terms, self._stop)
        return kept if len(kept) else terms

    def encode_terms(self, term_lists: Sequence[np.ndarray]) -> sp.csr_matrix:
        """Queries given as their own term ids (Vocabulary.own_terms)."""
        rows = []
        for terms in term_lists:
            block = self.table[self.terms_read(terms)]
            if self.settings.pooling == "max" and block.shape[0] > 1:
                row = sp.csr_matrix(block.max(axis=0))
            else:
                row = sp.csr_matrix(block.sum(axis=0))
            row.eliminate_zeros()
            rows.append(row)
        if not rows:
            return sp.csr_matrix((0, self.table.shape[1]), dtype=np.float32)
        return sp.vstack(rows, format="csr", dtype=np.float32)


def main() -> None:
    from mmr.config import Settings
    from mmr.methods.lsr.dev import dev_probes
    from mmr.methods.lsr.model import LSRModel
    from mmr.retrievers.base import Resources

    torch.set_num_threads(2)
    settings = Settings()
    resources = Resources(settings)
    model = LSRModel.load(settings.model_dir("lsr"), resources)
    probes = dev_probes(settings, resources, model.teacher, model.vocabulary)
    started = time.time()
    full = build_term_table(model.head, model.teacher, model.vocabulary, 256)
    print(f"table of {model.vocabulary.size:,} terms built in {time.time() - started:.0f} s ({full.nnz:,} weights)")
    documents = {}
    for probe in probes:
        queries, documents[probe.name] = probe.encode(model.head, model.config.expand_texts)
        served = probe.mrr(queries, documents[probe.name])
        print(f"{probe.name}: teacher {probe.teacher_mrr:.4f}, served teacher queries {served:.4f}")
    print("row terms | pooling | stop words left out | " + " | ".join(f"{p.name} dev MRR@10 | terms" for p in probes))
    for row_terms, pooling, skip in itertools.product((16, 64, 256), POOLINGS, (True, False)):
        table = TermTable(keep_row_terms(full, row_terms), model.vocabulary, TermTableQueries(row_terms, pooling, skip))
        cells = []
        for probe in probes:
            queries = table.encode_terms(probe.query_terms)
            cells += [f"{probe.mrr(queries, documents[probe.name]):.4f}", f"{queries.getnnz(axis=1).mean():.1f}"]
        print(f"{row_terms} | {pooling} | {skip} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
