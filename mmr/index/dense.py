"""A dense faiss index over L2-normalised vectors, inner product (so scores are cosines).

How it is built is a setting: a faiss factory string (``IndexParams.faiss_factory``; a retriever names
its own in ``DenseRetriever.index_factory``) and the search parameters that go with it (``nprobe`` for IVF,
``efSearch`` for HNSW), both kept in params.json. Flat is the default: it is exact, with corpora of
thousands of items it is fast enough, and it keeps every comparison between retrievers free of
approximation error. A saved index is loaded as it was built (``read_index``), its search parameters
set once at load. On a machine with CUDA and a faiss build with GPU support the index is copied to the
GPU at load; otherwise it stays on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mmr.config import BUILD_COMMAND
from mmr.index import gpu
from mmr.types import Hit

log = logging.getLogger(__name__)

INDEX_FILE, IDS_FILE, PARAMS_FILE = "index.faiss", "ids.json", "params.json"
FLAT = "Flat"


class IndexMismatchError(RuntimeError):
    """An index on disk does not belong to the corpus or encoder it is being loaded for."""


@dataclass(frozen=True)
class IndexParams:
    retriever: str
    encoder: str
    dim: int
    corpus: str
    corpus_fingerprint: str
    count: int = 0
    built_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    extra: dict = field(default_factory=dict)
    # Read by dense (faiss) indexes only; the others keep the defaults. A params.json written before these
    # fields existed lacks them and so describes what was built then: a Flat index.
    faiss_factory: str = FLAT
    search_params: dict = field(default_factory=dict)  # faiss parameter -> value, e.g. {"nprobe": 16}

    def mismatch(self, expected: IndexParams) -> list[str]:
        """What differs from the index the current code would build; ``count`` and ``built_at`` describe
        a build rather than ask for one. Each of ``expected.extra``'s keys (a retriever's own build
        settings, e.g. Seismic's block size) must match too: a key the index lacks counts as different.

        ``faiss_factory`` is checked: it decides what the index file holds (exact or approximate, which
        clusters), so an index built with another factory than the code asks for is stale and only a
        rebuild changes it. ``search_params`` are not: they are set at load, so changing one needs no
        rebuild (as with Seismic's search-time settings)."""
        keys = ("retriever", "encoder", "dim", "corpus", "corpus_fingerprint", "faiss_factory")
        problems = [
            f"{key}: index has {getattr(self, key)!r}, expected {getattr(expected, key)!r}"
            for key in keys
            if getattr(self, key) != getattr(expected, key)
        ]
        problems += [
            f"{key}: index has {self.extra.get(key)!r}, expected {value!r}"
            for key, value in expected.extra.items()
            if self.extra.get(key) != value
        ]
        return problems


class IndexTrainingError(ValueError):
    """A faiss factory that clusters or quantises (IVF, PQ) was given too few vectors to train on."""


class DenseIndex:
    """A faiss index and the ids of its rows. Searches of a GPU index take a lock: faiss GPU indexes are
    not thread-safe and the app serves several requests at once. A CPU index is searched without one,
    since faiss's CPU search is."""

    def __init__(self, index, ids: list[str], params: IndexParams, use_gpu: bool | None = None):
        """``index``: a faiss CPU index as built or read from disk, one row per id; it is kept as it is
        (copied to the GPU when there is one) and its search parameters are set here, once."""
        if index.ntotal != len(ids):
            raise ValueError(f"{index.ntotal} vectors for {len(ids)} ids")
        if index.d != params.dim:
            raise ValueError(f"vectors are {index.d}-d, params say {params.dim}")
        self.ids = list(ids)
        self.params = replace(params, count=len(ids))
        self.index = index
        self.on_gpu = False
        if use_gpu is not False and gpu.faiss_gpu_available():
            if (copied := gpu.copy_to_gpu(index, params.faiss_factory)) is not None:
                self.index, self.on_gpu = copied, True
        elif use_gpu:
            log.warning("GPU requested but faiss has no GPU support here; staying on the CPU")
        _set_search_params(self.index, self.params, self.on_gpu)
        self._search_guard = threading.Lock() if self.on_gpu else contextlib.nullcontext()

    @classmethod
    def build(cls, vectors: np.ndarray, ids: list[str], params: IndexParams, use_gpu: bool | None = None) -> DenseIndex:
        """An index of ``params.faiss_factory`` over ``vectors`` (row i for ``ids[i]``), trained on them
        first when the factory needs training."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(ids)} ids")
        if vectors.shape[1] != params.dim:
            raise ValueError(f"vectors are {vectors.shape[1]}-d, params say {params.dim}")
        index = faiss.index_factory(params.dim, params.faiss_factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            _train(index, vectors, params.faiss_factory)
        index.add(vectors)
        return cls(index, ids, params, use_gpu=use_gpu)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self.ids))
        if k <= 0:
            return [[] for _ in range(len(queries))]
        with self._search_guard:
            scores, rows = self.index.search(queries, k)
        return [
            [Hit(self.ids[row], float(score), rank) for rank, (row, score) in enumerate(zip(r, s), 1) if row >= 0]
            for r, s in zip(rows, scores)
        ]

    def vectors(self) -> np.ndarray:
        """The indexed vectors, row i for ``ids[i]``: exact for Flat, HNSW and IVF-Flat, the stored
        approximations for factories that compress (PQ, SQ)."""
        cpu = self._cpu_index()
        try:
            return cpu.reconstruct_n(0, cpu.ntotal)
        except RuntimeError as err:
            raise NotImplementedError(
                f"a {self.params.faiss_factory!r} index cannot give its vectors back ({_faiss_reason(err)}); "
                "encode the corpus again instead"
            ) from err

    def _cpu_index(self):
        import faiss

        if not self.on_gpu:
            return self.index
        with self._search_guard:  # the copy reads the GPU index, as a search does
            return faiss.index_gpu_to_cpu(self.index)

    def save(self, folder: Path) -> None:
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._cpu_index(), str(folder / INDEX_FILE))
        (folder / IDS_FILE).write_text(json.dumps(self.ids))
        (folder / PARAMS_FILE).write_text(json.dumps(asdict(self.params), indent=2))

    @classmethod
    def load(cls, folder: Path, expected: IndexParams | None = None, use_gpu: bool | None = None) -> DenseIndex:
        """The index as it was built (``read_index``). Its search parameters are ``expected``'s when given,
        the code's current ones (changing them needs no rebuild), else those saved with it."""
        import faiss

        folder = Path(folder)
        if not (folder / PARAMS_FILE).exists():
            raise IndexMismatchError(f"no index at {folder}; build it with `{BUILD_COMMAND}`")
        params = IndexParams(**json.loads((folder / PARAMS_FILE).read_text()))
        if expected is not None:
            if problems := params.mismatch(expected):
                raise IndexMismatchError(
                    f"index at {folder} is stale ({'; '.join(problems)}); rebuild it with `{BUILD_COMMAND}`"
                )
            params = replace(params, search_params=expected.search_params)
        ids = json.loads((folder / IDS_FILE).read_text())
        index = faiss.read_index(str(folder / INDEX_FILE))
        if index.ntotal != len(ids):
            raise IndexMismatchError(
                f"index at {folder} holds {index.ntotal} vectors for {len(ids)} ids; rebuild it with `{BUILD_COMMAND}`"
            )
        return cls(index, ids, params, use_gpu=use_gpu)


def _train(index, vectors: np.ndarray, factory: str) -> None:
    import faiss

    # k-means needs at least one vector per cluster; faiss's own message for it names a C++ frame.
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and len(vectors) < ivf.nlist:
        raise IndexTrainingError(
            f"a {factory!r} index needs at least {ivf.nlist} vectors to train its {ivf.nlist} clusters; "
            f"there are {len(vectors)}"
        )
    try:
        index.train(vectors)
    except RuntimeError as err:  # e.g. PQ, whose codebooks need 2**nbits vectors each
        raise IndexTrainingError(
            f"a {factory!r} index cannot be trained on {len(vectors)} vectors: {_faiss_reason(err)}"
        ) from err


def _set_search_params(index, params: IndexParams, on_gpu: bool) -> None:
    if not params.search_params:
        return
    import faiss

    space = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
    for name, value in params.search_params.items():
        try:
            space.set_index_parameter(index, name, value)
        except RuntimeError as err:
            raise ValueError(
                f"search parameter {name}={value!r} does not apply to a {params.faiss_factory!r} index: "
                f"{_faiss_reason(err)}"
            ) from err


def _faiss_reason(err: RuntimeError) -> str:
    """faiss's message without the C++ function and source line it starts with."""
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: '.*?' failed: )?", "", str(err))
