"""Retrievers as data: each entry names its class and how the app should label it."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from mmr.presets.base import PresetSpec
from mmr.presets.registry import PRESETS
from mmr.retrievers.base import Resources, Retriever


@dataclass(frozen=True)
class RetrieverSpec:
    loader: str  # "module:Class"
    label: str
    family: str  # "baseline" or the published method it re-implements
    trained: bool
    description: str
    trainer: str | None = None  # "module:function(settings, resources, seed) -> Manifest"
    # "module:NAME" of the settings the served model was trained with (a dataclass instance, or a dataclass
    # whose defaults they are), when the trainer takes them as ``hp=`` (with ``save=``, so that an exploratory
    # run can leave the served model alone): `mmr train NAME --set KEY=VALUE [--dev-only]`
    hyperparameters: str | None = None
    # An environment variable that must name an outside resource, a checkpoint no package ships
    # (``mmr build`` skips the retriever without it, and says so)
    needs_variable: str | None = None
    # Trained methods whose served model this one's training reads (a teacher, a start state, a reused
    # stage): the background trainer trains them first and skips this one when one of them failed.
    after: tuple[str, ...] = ()
    preset: str | None = None  # a published checkpoint (mmr/presets/registry.py) served as this retriever

    def unmet_requirement(self) -> str | None:
        """What to do before this retriever can be built here (its ``needs_variable`` is unset), or None."""
        if self.needs_variable and not os.environ.get(self.needs_variable):
            return f"set {self.needs_variable} (see the README), then run `python -m mmr build`"
        return None

    def retriever_class(self) -> type[Retriever]:
        if self.preset:
            from mmr.retrievers.preset import preset_retriever

            return preset_retriever(self.preset)
        module_name, class_name = self.loader.split(":")
        return getattr(importlib.import_module(module_name), class_name)


def _preset_entry(spec: PresetSpec) -> RetrieverSpec:
    return RetrieverSpec(
        "mmr.retrievers.preset:PresetRetriever",
        spec.label,
        spec.family,
        trained=False,  # trained by the paper's authors: nothing here trains it
        description=f"the published checkpoint, read as its code reads it ({spec.source})",
        needs_variable=spec.variable,
        preset=spec.name,
    )


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
    "borrowed-captions": RetrieverSpec(
        "mmr.retrievers.borrowed:BorrowedCaptionsRetriever",
        "Borrowed captions (no training)",
        "baseline",
        # no gradient step, but its pool of captions comes from the training data: `mmr train` builds it
        trained=True,
        description="zero-shot verbalisation + captions of the 5 nearest training images; no gradient step",
        trainer="mmr.retrievers.borrowed:train",
    ),
    "clip-zeroshot": RetrieverSpec(
        "mmr.retrievers.clip_zeroshot:CLIPZeroShotRetriever",
        "CLIP zero-shot",
        "baseline",
        trained=False,
        description="CLIP's text and image towers from a local checkpoint; built only where MMR_CLIP_PATH names one",
        needs_variable="MMR_CLIP_PATH",
    ),
    "lsr": RetrieverSpec(
        "mmr.methods.lsr:LSRRetriever",
        "Dense2Sparse LSR",
        "Dense2Sparse LSR",
        trained=True,
        description="a frozen dense retriever's vectors mapped to MiniLM vocabulary weights; Seismic inverted index",
        trainer="mmr.methods.lsr:train",
        hyperparameters="mmr.methods.lsr.settings:LSRTraining",
        after=("dense-inbatch",),
    ),
    "dense-inbatch": RetrieverSpec(
        "mmr.methods.univl_dr:DenseInBatchRetriever",
        "Dense, in-batch only (DPR-style)",
        "CLIP-DPR",
        trained=True,
        description="UniVL-DR's stage 1 alone: image features + class names + borrowed captions; in-batch negatives",
        trainer="mmr.methods.univl_dr:train_inbatch",
        hyperparameters="mmr.methods.univl_dr:SERVED_DATA",
    ),
    "univl-dr": RetrieverSpec(
        "mmr.methods.univl_dr:UniVLDRRetriever",
        "UniVL-DR",
        "UniVL-DR",
        trained=True,
        description="image + verbalisation (class names, borrowed captions); modality-balanced hard negatives",
        trainer="mmr.methods.univl_dr:train",
        after=("dense-inbatch",),
    ),
    "procrustes": RetrieverSpec(
        "mmr.methods.procrustes:ProcrustesRetriever",
        "Procrustes / least squares",
        "Procrustes / least squares",
        trained=True,
        description="closed-form linear map between frozen MiniLM and EfficientNet features; no gradient steps",
        trainer="mmr.methods.procrustes:train",
    ),
    "procrustes-gmlp": RetrieverSpec(
        "mmr.methods.gmlp:ProcrustesGmlpRetriever",
        "Procrustes + gMLP (contrastive)",
        "Procrustes / least squares",
        trained=True,
        description="the closed-form map tuned with InfoNCE, plus a gMLP branch over the 7x7 image grid",
        trainer="mmr.methods.gmlp:train",
    ),
    "marvel": RetrieverSpec(
        "mmr.methods.marvel:MarvelRetriever",
        "MARVEL",
        "MARVEL",
        trained=True,
        description="image grid cells as visual tokens between <im_start>/<im_end> inside MiniLM; 4-stage training",
        trainer="mmr.methods.marvel:train",
        hyperparameters="mmr.methods.marvel:SERVED_DATA",
    ),
    "ciea": RetrieverSpec(
        "mmr.methods.ciea:CieaRetriever",
        "CIEA",
        "CIEA",
        trained=True,
        description="MARVEL + complementary-information extractor; image caption = its ImageNet class names",
        trainer="mmr.methods.ciea:train",
        hyperparameters="mmr.methods.marvel:SERVED_DATA",
        after=("marvel",),
    ),
    # The published checkpoints: built only where their folder variable names their files (none ship here).
    **{name: _preset_entry(spec) for name, spec in PRESETS.items()},
}


# The order `mmr train-all` (and the app's background trainer) trains in: every method after those it
# reads (``after``), and otherwise the quickest first, so that a fresh app gains methods as early as it can.
TRAINING_ORDER: tuple[str, ...] = (
    "procrustes",
    "borrowed-captions",
    "procrustes-gmlp",
    "dense-inbatch",
    "univl-dr",
    "marvel",
    "ciea",
    "lsr",
)


def _attribute(reference: str):
    module_name, attribute = reference.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def train_function(spec: RetrieverSpec):
    return _attribute(spec.trainer)


def served_hyperparameters(spec: RetrieverSpec):
    """The settings the trainer uses when given none (``--set`` changes a copy), or None if it takes none."""
    if not spec.hyperparameters:
        return None
    served = _attribute(spec.hyperparameters)
    return served() if isinstance(served, type) else served


class UnknownRetrieverError(KeyError):
    pass


def retriever_spec(name: str) -> RetrieverSpec:
    if name not in RETRIEVERS:
        raise UnknownRetrieverError(f"retriever {name!r} not found. Available: {sorted(RETRIEVERS)}")
    return RETRIEVERS[name]


__all__ = [
    "RETRIEVERS",
    "Resources",
    "Retriever",
    "RetrieverSpec",
    "TRAINING_ORDER",
    "UnknownRetrieverError",
    "served_hyperparameters",
    "retriever_spec",
    "train_function",
]
