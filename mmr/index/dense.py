"""A flat inner-product faiss index over L2-normalised vectors (so scores are cosines).

Flat is exact: with corpora of thousands of items it is fast enough and keeps every comparison
between retrievers free of approximation error. On a machine with CUDA and a faiss build with GPU
support the index is copied to the GPU at load; otherwise it stays on the CPU.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmr.config import BUILD_COMMAND
from mmr.types import Hit

log = logging.getLogger(__name__)

INDEX_FILE, IDS_FILE, PARAMS_FILE = "index.faiss", "ids.json", "params.json"


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

    def mismatch(self, expected: IndexParams) -> list[str]:
        """What differs from the index the current code would build; ``count`` and ``built_at`` describe
        a build rather than ask for one. Each of ``expected.extra``'s keys (a retriever's own build
        settings, e.g. Seismic's block size) must match too: a key the index lacks counts as different."""
        keys = ("retriever", "encoder", "dim", "corpus", "corpus_fingerprint")
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


def faiss_gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class DenseIndex:
    def __init__(self, vectors: np.ndarray, ids: list[str], params: IndexParams, use_gpu: bool | None = None):
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(ids)} ids")
        if vectors.shape[1] != params.dim:
            raise ValueError(f"vectors are {vectors.shape[1]}-d, params say {params.dim}")
        cpu_index = faiss.IndexFlatIP(params.dim)
        cpu_index.add(vectors)
        self.ids = list(ids)
        self.params = IndexParams(**{**asdict(params), "count": len(ids)})
        self.on_gpu = False
        self.index = cpu_index
        if use_gpu is not False and faiss_gpu_available():
            self._gpu_resources = faiss.StandardGpuResources()
            self.index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, cpu_index)
            self.on_gpu = True
        elif use_gpu:
            log.warning("GPU requested but faiss has no GPU support here; staying on the CPU")

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self.ids))
        if k <= 0:
            return [[] for _ in range(len(queries))]
        scores, rows = self.index.search(queries, k)
        return [
            [Hit(self.ids[row], float(score), rank) for rank, (row, score) in enumerate(zip(r, s), 1) if row >= 0]
            for r, s in zip(rows, scores)
        ]

    def vectors(self) -> np.ndarray:
        import faiss

        cpu = faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index
        return cpu.reconstruct_n(0, cpu.ntotal)

    def save(self, folder: Path) -> None:
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cpu = faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index
        faiss.write_index(cpu, str(folder / INDEX_FILE))
        (folder / IDS_FILE).write_text(json.dumps(self.ids))
        (folder / PARAMS_FILE).write_text(json.dumps(asdict(self.params), indent=2))

    @classmethod
    def load(cls, folder: Path, expected: IndexParams | None = None, use_gpu: bool | None = None) -> DenseIndex:
        import faiss

        folder = Path(folder)
        if not (folder / PARAMS_FILE).exists():
            raise IndexMismatchError(f"no index at {folder}; build it with `{BUILD_COMMAND}`")
        params = IndexParams(**json.loads((folder / PARAMS_FILE).read_text()))
        if expected is not None and (problems := params.mismatch(expected)):
            raise IndexMismatchError(
                f"index at {folder} is stale ({'; '.join(problems)}); rebuild it with `{BUILD_COMMAND}`"
            )
        ids = json.loads((folder / IDS_FILE).read_text())
        index = faiss.read_index(str(folder / INDEX_FILE))
        vectors = index.reconstruct_n(0, index.ntotal)
        return cls(vectors, ids, params, use_gpu=use_gpu)
