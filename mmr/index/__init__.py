"""Indexes saved as folders: the index file, the ids, a params.json; never pickles."""

from mmr.index.dense import FLAT, DenseIndex, IndexMismatchError, IndexParams, IndexTrainingError
from mmr.index.gpu import faiss_gpu_available

__all__ = ["FLAT", "DenseIndex", "IndexMismatchError", "IndexParams", "IndexTrainingError", "faiss_gpu_available"]
