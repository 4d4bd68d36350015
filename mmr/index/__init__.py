"""Indexes saved as folders: the index file, the ids, a params.json; never pickles."""

from mmr.index.dense import DenseIndex, IndexMismatchError, IndexParams, faiss_gpu_available

__all__ = ["DenseIndex", "IndexMismatchError", "IndexParams", "faiss_gpu_available"]
