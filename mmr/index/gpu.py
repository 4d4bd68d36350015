"""faiss on a GPU: one resource object per process, and a copy of a CPU index onto it.

A ``StandardGpuResources`` holds a CUDA stream and a scratch allocation of GPU memory; one per index
would hold one each, so every index in the process shares one, created the first time an index moves
to the GPU.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_shared_resources = None
_shared_resources_lock = threading.Lock()


def faiss_gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def shared_gpu_resources():
    """The process's one ``StandardGpuResources``; the lock keeps two threads that load an index at the
    same moment (the app's refresh loads new releases beside the threads serving searches) from making two."""
    global _shared_resources
    if _shared_resources is None:
        with _shared_resources_lock:
            if _shared_resources is None:
                import faiss

                _shared_resources = faiss.StandardGpuResources()
    return _shared_resources


def copy_to_gpu(cpu_index, factory: str):
    """The index copied onto GPU 0, or None when faiss has no GPU version of it (HNSW, for one): such an
    index is searched on the CPU."""
    import faiss

    try:
        return faiss.index_cpu_to_gpu(shared_gpu_resources(), 0, cpu_index)
    except RuntimeError as err:
        log.warning("faiss cannot put a %r index on the GPU (%s); it stays on the CPU", factory, err)
        return None
