"""Corpora: the on-disk document format, its loader, and adapters from the Debian packages."""

from mmr.corpus.format import Corpus, read_documents, write_documents

__all__ = ["Corpus", "read_documents", "write_documents"]
