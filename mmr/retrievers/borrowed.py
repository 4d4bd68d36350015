"""Borrowed captions without training: the zero-shot verbalisation plus the look-alikes' captions.

The honest baseline for the borrowed captions that UniVL-DR, in-batch dense, MARVEL and CIEA use: an
image is the zero-shot verbalisation (softmax-weighted ImageNet class names through MiniLM) plus, at
the same weight UniVL-DR adds them, the weighted mean of the captions of its 5 nearest training images
(encoders/neighbours.py); a text is MiniLM's embedding. No gradient step is taken: ``mmr train
borrowed-captions`` only embeds the training captions into the pool and scores dev, so that what the
trained methods add on top of their borrowed captions can be read off the tables.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmr.config import Settings
from mmr.encoders.base import ImageFeatures, l2_normalise
from mmr.encoders.neighbours import CaptionPool, NeighbourCaptioner
from mmr.encoders.registry import STAND_INS
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import TrainedDenseRetriever
from mmr.training.common import Manifest
from mmr.training.data import caption_pool, load_dev_set, load_training_data, mrr_at_10

log = logging.getLogger(__name__)

NAME = "borrowed-captions"


@dataclass(frozen=True)
class BorrowedSettings:
    # UniVL-DR's (univl_dr.MODEL): the baseline borrows as the trained models do, not tuned on its own.
    neighbours: int = 5
    weight: float = 0.5


class BorrowedCaptionsModel:
    """The ``DualEncoderModel``: MiniLM texts; images as verbalisation + weight x borrowed captions."""

    needs_grid = False

    def __init__(self, resources: Resources, captioner: NeighbourCaptioner, weight: float):
        self.text_encoder = resources.encoder(STAND_INS.text)
        self.verbaliser = resources.verbaliser(STAND_INS.text)
        self.captioner, self.weight = captioner, weight
        self.dim = self.text_encoder.dim

    def encode_texts(self, texts) -> np.ndarray:
        return self.text_encoder.encode(list(texts), progress="text documents" if len(texts) > 256 else False)

    def encode_images(self, features: ImageFeatures) -> np.ndarray:
        verbal = self.verbaliser.embed(features.logits)
        return l2_normalise(verbal + self.weight * self.captioner.embed(features.pooled))


class BorrowedCaptionsRetriever(TrainedDenseRetriever):
    name = NAME

    @classmethod
    def load_model(cls, folder: Path, resources: Resources) -> BorrowedCaptionsModel:
        settings = BorrowedSettings(**Manifest.load(folder).config["borrowed"])
        captioner = NeighbourCaptioner(CaptionPool.load(folder), settings.neighbours)
        return BorrowedCaptionsModel(resources, captioner, settings.weight)


def train(settings: Settings, resources: Resources, seed: int = 0) -> Manifest:
    """The pool from the training data (no gradient step; ``seed`` is unused), scored on stamps dev."""
    started = time.time()
    data = load_training_data(settings, resources, with_text_documents=False)
    pool = caption_pool(data, resources, STAND_INS.text)
    chosen = BorrowedSettings()
    model = BorrowedCaptionsModel(resources, NeighbourCaptioner(pool, chosen.neighbours), chosen.weight)
    dev = load_dev_set(settings)
    qids = list(dev.benchmark.queries)
    documents = model.encode_images(resources.image_features(dev.image_documents, STAND_INS.image))
    queries = model.encode_texts([dev.benchmark.queries[q] for q in qids])
    score = mrr_at_10(documents, [d.id for d in dev.image_documents], queries, qids, dev.benchmark.qrels)
    log.info("%s: %d captions in the pool, dev MRR@10 %.4f", NAME, len(pool.ids), score)
    folder = settings.model_dir(NAME)
    folder.mkdir(parents=True, exist_ok=True)
    pool.save(folder)
    config = {"borrowed": {"neighbours": chosen.neighbours, "weight": chosen.weight}, "pool_images": len(pool.ids)}
    manifest = Manifest(NAME, data.fingerprint, round(score, 4), seed, round(time.time() - started, 1), config=config)
    manifest.save(folder)  # last: its hash keys the indexes
    return manifest
