"""An inverted index over learned sparse vectors (Seismic), with scipy CSR as the exact reference.

Seismic is approximate by design (pruned posting lists, block summaries, quantised values). Here it
keeps every posting (``n_postings`` = number of documents), is asked for a few more candidates than
needed, and its candidates are rescored exactly from the forward CSR matrix: the top k then agrees
with brute force (tests check it on random data; the report measures it on ours) while only blocks
whose summary can still reach the current top k are scored.

On disk: ``index.seismic`` (Seismic's own format), ``forward.npz`` (CSR, read with pickles off),
``ids.json`` and ``params.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from mmr.index import IndexMismatchError, IndexParams
from mmr.types import Hit

log = logging.getLogger(__name__)

SEISMIC_STEM, FORWARD_FILE, IDS_FILE, PARAMS_FILE = "index", "forward.npz", "ids.json", "params.json"
SEISMIC_FILE = f"{SEISMIC_STEM}.index.seismic"
# Summaries keep SUMMARY_ENERGY of each block's mass: Seismic's default. With the rescoring below, top 10
# agreed with brute force on random and on our vectors, and building is ~3x faster than at 1.0. Summaries
# are most of the file: 0.1 cut the mixed index from 330 to 113 MB and was still exact on 300 dev queries,
# but summaries that keep less mass under-estimate blocks, and the random-vector brute-force test fails.
SUMMARY_ENERGY = 0.4
# Each posting list is cut into centroid_fraction x its length blocks, each with a summary. Seismic's default,
# 0.1 (blocks of ~10 postings), made the mixed collection's index 660 MB; 0.01 made it 330 MB, built faster
# and answered in 14.3 instead of 21.7 ms, still agreeing with brute force on every top 10
# (scripts/sparse_index_sweep.py, 300 mixed dev queries). 0.001 (247 MB, 9.1 ms) would make every list
# shorter than ~1,000 postings a single block, and block skipping is what a larger collection needs.
CENTROID_FRACTION = 0.01
HEAP_FACTOR = 1.0  # a block is skipped when its summary score falls below HEAP_FACTOR x the k-th best score
EXTRA_CANDIDATES = 10  # slack for Seismic's quantised summaries before exact rescoring
INSTALL_HINT = "pip install pyseismic-lsr"


@contextlib.contextmanager
def _native_output_to_log():
    """Seismic's Rust code prints progress to fd 1; the library logs instead of printing."""
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(1)
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.debug("seismic: %s", line.strip())


def _seismic():
    try:
        import seismic
    except ImportError as err:
        raise ImportError(f"the LSR retriever needs Seismic ({err}); {INSTALL_HINT}") from err
    return seismic


class SparseIndex:
    """Top-k by inner product over non-negative sparse document vectors."""

    def __init__(
        self,
        forward: sp.csr_matrix,
        ids: list[str],
        params: IndexParams,
        engine=None,
        centroid_fraction: float = CENTROID_FRACTION,
        summary_energy: float = SUMMARY_ENERGY,
    ):
        if forward.shape[0] != len(ids):
            raise ValueError(f"{forward.shape[0]} vectors for {len(ids)} ids")
        self.forward = sp.csr_matrix(forward, dtype=np.float32)
        self.forward.sort_indices()
        self.ids = list(ids)
        self._rows = {doc: row for row, doc in enumerate(self.ids)}
        self.params = IndexParams(**{**asdict(params), "count": len(ids)})
        self.engine = (
            engine if engine is not None else self._build_engine(self.forward, centroid_fraction, summary_energy)
        )
        self._string = _seismic().get_seismic_string()
        self.document_frequency = np.bincount(self.forward.indices, minlength=self.forward.shape[1])

    @staticmethod
    def _build_engine(forward: sp.csr_matrix, centroid_fraction: float, summary_energy: float):
        seismic = _seismic()
        if forward.nnz == 0:
            return None  # Seismic refuses an empty collection; every query then has no answer
        dataset = seismic.SeismicDataset(dim=forward.shape[1])
        # Row numbers as Seismic ids; rows without terms are skipped by Seismic and can never match.
        dataset.add_documents_by_id(
            [str(i) for i in range(forward.shape[0])],
            forward.indices.astype(np.int64),
            forward.data.astype(np.float32),
            forward.indptr.astype(np.int64),
        )
        with _native_output_to_log():
            return seismic.SeismicIndex.build_from_dataset(
                dataset,
                n_postings=max(forward.shape[0], 1),
                max_fraction=1.0,
                summary_energy=summary_energy,
                centroid_fraction=centroid_fraction,
                num_threads=0,
            )

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: sp.csr_matrix, k: int, lists: int | None = None) -> list[Hit]:
        """Top ``k`` by inner product; Seismic walks the posting lists of the query's ``lists`` heaviest terms
        (all of them for None) and scores the documents it meets with the whole query."""
        query = sp.csr_matrix(query, dtype=np.float32)
        if query.nnz == 0 or k <= 0 or self.engine is None:
            return []
        components = np.asarray([str(i) for i in query.indices], dtype=self._string)
        found = self.engine.search(
            "q",
            components,
            query.data.astype(np.float32),
            k=k + EXTRA_CANDIDATES,
            query_cut=int(query.nnz if lists is None else min(lists, query.nnz)),
            heap_factor=HEAP_FACTOR,
        )
        rows = np.asarray([int(doc) for _, _, doc in found], dtype=np.int64)
        return self._rank(rows, (self.forward[rows] @ query.T).toarray().ravel(), k)

    def search_exact(self, query: sp.csr_matrix, k: int) -> list[Hit]:
        """Brute force over the forward matrix: the reference the inverted index is tested against."""
        scores = (self.forward @ sp.csr_matrix(query, dtype=np.float32).T).toarray().ravel()
        return self._rank(np.arange(len(scores)), scores, k)

    def _rank(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
        order = np.lexsort((rows, -scores))[:k]  # ties broken by row, as brute force does
        return [Hit(self.ids[rows[i]], float(scores[i]), rank) for rank, i in enumerate(order[scores[order] > 0], 1)]

    def postings_in_query_lists(self, query: sp.csr_matrix) -> int:
        """Postings an exhaustive term-at-a-time traversal would score (Seismic scores at most these)."""
        return int(self.document_frequency[sp.csr_matrix(query).indices].sum())

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._rows

    def vector(self, doc_id: str) -> sp.csr_matrix:
        return self.forward[self._rows[doc_id]]

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.engine is not None:
            with _native_output_to_log():
                self.engine.save(str(folder / SEISMIC_STEM))
        sp.save_npz(folder / FORWARD_FILE, self.forward)
        (folder / IDS_FILE).write_text(json.dumps(self.ids))
        (folder / PARAMS_FILE).write_text(json.dumps(asdict(self.params), indent=2))

    @classmethod
    def load(cls, folder: Path, expected: IndexParams, rebuild_hint: str) -> SparseIndex:
        folder = Path(folder)
        if not (folder / PARAMS_FILE).exists():
            raise IndexMismatchError(f"no LSR index at {folder}; {rebuild_hint}")
        params = IndexParams(**json.loads((folder / PARAMS_FILE).read_text()))
        if problems := params.mismatch(expected):
            raise IndexMismatchError(f"LSR index at {folder} is stale ({'; '.join(problems)}); {rebuild_hint}")
        forward = sp.load_npz(folder / FORWARD_FILE)
        engine = None
        if forward.nnz:  # an index of empty vectors has no Seismic file (see _build_engine)
            if not (folder / SEISMIC_FILE).exists():
                raise IndexMismatchError(f"LSR index at {folder} has no {SEISMIC_FILE}; {rebuild_hint}")
            with _native_output_to_log():
                engine = _seismic().SeismicIndex.load(str(folder / SEISMIC_FILE))
        return cls(forward, json.loads((folder / IDS_FILE).read_text()), params, engine=engine)
