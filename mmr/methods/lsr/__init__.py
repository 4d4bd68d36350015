"""Dense2Sparse learned sparse retrieval (after "Multimodal Learned Sparse Retrieval with Probabilistic
Expansion Control", Nguyen et al., ECIR 2024): a frozen dense retriever's vectors become weights over
the text backbone's WordPiece vocabulary, served from an inverted index.

Modules: ``head`` (the model and its schedules), ``teacher`` (which dense retriever is imitated),
``model`` (what is saved and served), ``index`` (Seismic + exact reference), ``retriever``,
``training``.
"""

from mmr.methods.lsr.retriever import LSRRetriever
from mmr.methods.lsr.training import train

__all__ = ["LSRRetriever", "train"]
