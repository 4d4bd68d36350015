"""What trained retrievers learn from, and the dev split they are selected on.

Training examples come only from: every openclipart image-caption pair (never evaluated on), the
stamps of the *train* split (query = description, positive = the image), and the WordNet synsets of
the *train* split (query = lemma, positive = gloss). Dev and test stamps and synsets are held out by
item (see corpus/splits.py); a test query never reaches a loss.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mmr.build import build_training_corpus
from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.format import Corpus
from mmr.corpus.splits import Benchmark, load_benchmark, normalise_description
from mmr.corpus.wordnet import MIN_DEFINITION_WORDS, Synset, read_noun_synsets, synset_document
from mmr.encoders.base import ImageFeatures
from mmr.encoders.neighbours import CaptionPool
from mmr.encoders.registry import STAND_INS
from mmr.retrievers.base import Resources
from mmr.types import Document


@dataclass(frozen=True)
class Example:
    query: str
    positive_id: str
    group: str  # examples sharing a group are the same query: never each other's negatives


@dataclass
class TrainingData:
    examples: list[Example]
    documents: dict[str, Document]  # every document an example points at: the training corpus
    _features: dict[bool, ImageFeatures] = field(default_factory=dict, repr=False)

    @cached_property
    def image_ids(self) -> list[str]:
        return [doc_id for doc_id, doc in self.documents.items() if doc.modality == "image"]

    @cached_property
    def text_ids(self) -> list[str]:
        return [doc_id for doc_id, doc in self.documents.items() if doc.modality == "text"]

    @cached_property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for example in self.examples:
            digest.update(f"{example.query}\0{example.positive_id}\n".encode())
        return digest.hexdigest()[:16]

    def image_features(self, resources: Resources, keep_grid: bool = False) -> ImageFeatures:
        """Frozen image-encoder outputs for ``image_ids``, in that order (cached on disk)."""
        if keep_grid not in self._features:
            docs = [self.documents[doc_id] for doc_id in self.image_ids]
            # An augmented view's features come from its transformed image (training/variants.py); encoding the
            # file again would give the original's, silently.
            if any("view" in doc.metadata for doc in docs):
                raise ValueError("augmented views carry the features they were made with; there are none to load")
            self._features[keep_grid] = resources.image_features(docs, STAND_INS.image, keep_grid=keep_grid)
        return self._features[keep_grid]

    def with_examples(self, examples: list[Example], documents: dict[str, Document]) -> TrainingData:
        """These examples and documents added (the image features stay cached: no image is added)."""
        assert all(doc.modality == "text" for doc in documents.values()), "extra documents must be texts"
        return TrainingData([*self.examples, *examples], {**self.documents, **documents}, self._features)

    def image_only(self) -> TrainingData:
        """Only the image-caption examples (for stages that train the visual side alone)."""
        examples = [e for e in self.examples if self.documents[e.positive_id].modality == "image"]
        return TrainingData(examples, self.documents, self._features)


def load_training_data(settings: Settings, resources: Resources, with_text_documents: bool = True) -> TrainingData:
    """All training examples, minus images that duplicate a held-out stamp (see drop_held_out_duplicates)."""
    data = _collect_examples(settings, with_text_documents)
    cleaned, _ = drop_held_out_duplicates(data, settings, resources)
    return cleaned


def _collect_examples(settings: Settings, with_text_documents: bool) -> TrainingData:
    from mmr.corpus.format import read_documents

    splits = _splits(settings)
    examples: list[Example] = []
    documents: dict[str, Document] = {}
    for doc in read_documents(build_training_corpus(settings)):
        documents[doc.id] = doc
        examples.append(Example(doc.text, doc.id, normalise_description(doc.text)))
    stamps = load_collection(settings, "stamps")
    for doc in stamps.documents:
        if splits.get(doc.id) == "train":
            documents[doc.id] = doc
            examples.append(Example(doc.text, doc.id, normalise_description(doc.text)))
    if with_text_documents:
        mixed = load_collection(settings, "mixed")
        train = load_benchmark(settings.benchmark_dir, "mixed", "train")
        for qid, text in train.queries.items():
            for doc_id in train.qrels.get(qid, {}):
                doc = mixed[doc_id]
                if doc.modality == "text" and splits.get(doc_id) == "train":
                    documents[doc.id] = doc
                    examples.append(Example(text, doc.id, f"wn:{normalise_description(text)}"))
    return TrainingData(examples, documents)


def caption_pool(data: TrainingData, resources: Resources, text_encoder: str = STAND_INS.text) -> CaptionPool:
    """The training images with their own captions: what borrowed captions are drawn from
    (encoders/neighbours.py). Its features are ``data``'s, which are cached."""
    captions = [data.documents[doc_id].text for doc_id in data.image_ids]
    pooled = data.image_features(resources).pooled
    return CaptionPool.build(data.image_ids, pooled, captions, resources.encoder(text_encoder))


def unlabelled_wordnet_pairs(
    settings: Settings, count: int, seed: int = 0
) -> tuple[list[Example], dict[str, Document]]:
    """``count`` lemma -> gloss pairs of WordNet noun synsets that are *not* in the mixed collection.

    For distillation, where a teacher scores the pairs and the pairing itself is not a label.
    """
    held_out_queries = [
        text
        for split in ("dev", "test")
        for text in load_benchmark(settings.benchmark_dir, "mixed", split).queries.values()
    ]
    in_collection = {doc.id for doc in load_collection(settings, "mixed").documents}
    synsets = read_noun_synsets(settings.sources.wordnet_dict)
    return pick_unlabelled_synsets(synsets, in_collection, held_out_queries, count, seed)


def pick_unlabelled_synsets(
    synsets: list[Synset], in_collection: set[str], held_out_queries: list[str], count: int, seed: int = 0
) -> tuple[list[Example], dict[str, Document]]:
    """A seeded sample of synsets no split holds, none named by a held-out query.

    Outside the collection, a synset is no item of any split. One that shares a lemma with a dev or
    test query is left out too: a held-out query text is never encoded for training.
    """

    def key(text: str) -> str:
        return " ".join(text.lower().split())

    held_out = {key(text) for text in held_out_queries}
    candidates = [
        synset
        for synset in synsets
        if synset.doc_id not in in_collection
        and len(synset.definition.split()) >= MIN_DEFINITION_WORDS
        and not any(key(lemma) in held_out for lemma in synset.lemmas)
    ]
    chosen = random.Random(seed).sample(candidates, min(count, len(candidates)))
    examples = [Example(s.lemmas[0], s.doc_id, f"wn:{normalise_description(s.lemmas[0])}") for s in chosen]
    return examples, {s.doc_id: synset_document(s) for s in chosen}


def _splits(settings: Settings) -> dict[str, str]:
    import json

    from mmr.corpus.splits import SPLITS_VERSION

    return json.loads((settings.benchmark_dir / SPLITS_VERSION / "splits.json").read_text())


def drop_held_out_duplicates(
    data: TrainingData, settings: Settings, resources: Resources, threshold: float = 0.85
) -> tuple[TrainingData, list[str]]:
    """Remove training images that are (near) copies of a dev or test stamp.

    Tux Paint took many stamps from openclipart: the same drawing can sit in both packages, and
    training on it would leak a held-out item. Near-duplicates are found by cosine similarity of the
    frozen image features. At 0.85 and above we saw re-used drawings (a dreidel drawn twice); below
    it, same-style glyphs ("The letter F" vs "T"). Dropping some of those too is the safe side.
    """
    splits = _splits(settings)
    stamps = load_collection(settings, "stamps")
    held_out = [doc for doc in stamps.documents if splits.get(doc.id) in ("dev", "test")]
    from mmr.encoders import l2_normalise

    held = l2_normalise(resources.image_features(held_out, STAND_INS.image).pooled)
    train_features = l2_normalise(data.image_features(resources).pooled)
    similarity = (train_features @ held.T).max(axis=1)
    dropped = {doc_id for doc_id, sim in zip(data.image_ids, similarity) if sim >= threshold}
    examples = [e for e in data.examples if e.positive_id not in dropped]
    documents = {k: v for k, v in data.documents.items() if k not in dropped}
    return TrainingData(examples, documents), sorted(dropped)


@dataclass(frozen=True)
class DevSet:
    """The stamps collection with the images-setting dev queries: what checkpoints are chosen on."""

    corpus: Corpus
    benchmark: Benchmark

    @property
    def image_documents(self) -> list[Document]:
        return self.corpus.of_modality("image")


def load_dev_set(settings: Settings) -> DevSet:
    return DevSet(load_collection(settings, "stamps"), load_benchmark(settings.benchmark_dir, "images", "dev"))


def mrr_at_10(
    doc_vectors: np.ndarray,
    doc_ids: list[str],
    query_vectors: np.ndarray,
    qids: list[str],
    qrels: dict[str, dict[str, int]],
) -> float:
    """Exact MRR@10 by brute force (the dev loop runs it often; ranx checks the same thing at the end)."""
    scores = np.asarray(query_vectors, np.float32) @ np.asarray(doc_vectors, np.float32).T
    return mrr_at_10_of_scores(scores, doc_ids, qids, qrels)


def mrr_at_10_of_scores(scores: np.ndarray, doc_ids: list[str], qids: list[str], qrels: dict) -> float:
    """MRR@10 of a (queries, documents) score matrix."""
    top = np.argsort(-scores, axis=1)[:, :10]
    reciprocal = []
    for qid, row in zip(qids, top):
        relevant = qrels.get(qid, {})
        rank = next((i + 1 for i, col in enumerate(row) if relevant.get(doc_ids[col], 0) > 0), None)
        reciprocal.append(1.0 / rank if rank else 0.0)
    return float(np.mean(reciprocal)) if reciprocal else 0.0
