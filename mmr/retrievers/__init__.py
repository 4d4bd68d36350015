"""Retrievers as data: each entry names its class and how the app should label it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from mmr.retrievers.base import Resources, Retriever


@dataclass(frozen=True)
class RetrieverSpec:
    loader: str  # "module:Class"
    label: str
    family: str  # "baseline" or the published method it re-implements
    trained: bool
    description: str
    trainer: str | None = None  # "module:function(settings, resources, seed) -> Manifest"

    def retriever_class(self) -> type[Retriever]:
        module_name, class_name = self.loader.split(":")
        return getattr(importlib.import_module(module_name), class_name)


RETRIEVERS: dict[str, RetrieverSpec] = {
    "bm25": RetrieverSpec(
        "mmr.retrievers.bm25:BM25Retriever",
        "BM25",
        "baseline",
        trained=False,
        description="bm25s over text documents and the top ImageNet class names of each image",
    ),
    "zeroshot-verbal": RetrieverSpec(
        "mmr.retrievers.zeroshot:VerbalisationRetriever",
        "Zero-shot verbalisation",
        "baseline",
        trained=False,
        description="softmax-weighted ImageNet class names embedded by MiniLM; no training",
    ),
}


def train_function(spec: RetrieverSpec):
    module_name, function_name = spec.trainer.split(":")
    return getattr(importlib.import_module(module_name), function_name)


class UnknownRetrieverError(KeyError):
    pass


def retriever_spec(name: str) -> RetrieverSpec:
    if name not in RETRIEVERS:
        raise UnknownRetrieverError(f"retriever {name!r} not found. Available: {sorted(RETRIEVERS)}")
    return RETRIEVERS[name]


__all__ = ["RETRIEVERS", "Resources", "Retriever", "RetrieverSpec", "UnknownRetrieverError", "retriever_spec", "train_function"]
