"""UniVL-DR (Liu et al., ICLR 2023; OpenMatch/UniVL-DR) and its stage-1 model, in-batch-only dense.

Two registered retrievers share one architecture (``univl_model``) and one training code
(``univl_training``):

- ``dense-inbatch``: stage 1 only, in-batch negatives over mixed-modality positives (DPR; the
  paper's CLIP-DPR rung).
- ``univl-dr``: stage 1, then hard negatives mined with the stage-1 model, one image and one text
  per query (modality-balanced), trained with a per-query softmax over the positive, both hard
  negatives and the rest of the batch. It reuses a trained ``dense-inbatch`` model when one with the
  same configuration, data and seed exists, and otherwise runs stage 1 itself: the result is the same.

Departures from the paper, all for a 2-core CPU: the stand-in text backbone replaces CLIP's text tower with only
its top layers trainable, and dev chose to keep it frozen in both stages here (see STAGE2); the image
tower is the frozen stand-in vision backbone plus a trainable MLP; for the paper's generated captions, the
verbalisation is the image's top ImageNet class names plus the captions it borrows from the training
images that look most like it (encoders/neighbours.py), both from the image alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.splits import load_benchmark
from mmr.encoders.base import ImageFeatures
from mmr.encoders.neighbours import CaptionPool, NeighbourCaptioner
from mmr.encoders.registry import STAND_INS
from mmr.methods.univl_model import UniVLConfig, UniVLEncoder, build_model, load_model, save_model, text_side_tag
from mmr.methods.univl_training import (
    DevData,
    TrainSet,
    UniVLStage,
    make_train_set,
    mine,
    run_stage,
    text_states,
    trainable_texts,
)
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import TrainedDenseRetriever
from mmr.training.common import BestCheckpoint, Manifest, seed_everything
from mmr.training.data import caption_pool, load_training_data
from mmr.training.variants import DataOptions
from mmr.types import Query

log = logging.getLogger(__name__)

NAME, INBATCH_NAME = "univl-dr", "dense-inbatch"
# Borrowed captions (encoders/neighbours.py) on the image side: the one lever that moved dev; 5 neighbours at
# weight 0.5 from a dev probe of the untrained sum (docs/findings.md, "How the dense methods' settings were chosen").
MODEL = UniVLConfig(borrowed_neighbours=5)
# Stage 1 starts with the text tower frozen: CLIP arrives aligned, our image head does not (see train_inbatch).
# The head starts at zero (the verbalisation alone) and must move gently: at 1e-3 it fitted openclipart's titles
# and dev fell; 1e-4 is where it still helps.
# Both stop early on dev: an epoch of stage 1 proper (the text tower too) costs ~90 s on 2 cores, and the
# epochs an early stop cut were never the ones kept (docs/findings.md, "Time").
STAGE1_HEAD = UniVLStage(epochs=8, lr_head=1e-4, patience=3)
STAGE1 = UniVLStage(epochs=4, lr_text=3e-5, lr_head=3e-4, patience=1)
# Checkpoints are chosen on the mean dev MRR@10 of both settings: images only (the stamps, as the other
# methods) and mixed (stamps + WordNet glosses), the universal retrieval UniVL-DR is built for.
DEV_SETS = (("stamps", "images"), ("mixed", "mixed"))
# Stage 2 trains what stage 1 kept trainable (the head; fine-tuning the text tower lowered dev in both stages),
# at the gentler head learning rate that won on dev once borrowed captions came in (docs/findings.md).
STAGE2 = UniVLStage(epochs=3, lr_head=3e-5)
STAGE2_HEAD_ONLY = True
# Negatives come from the stage-1 model's ranks 30-200, not the paper's top 100: near-duplicate clip art the
# qrels do not mark can sit at the top, and would be pushed away as negatives. The window won on dev
# (`scripts/univl_stage2_variants.py`, docs/findings.md).
MINING_RANKS = (30, 200)
SERVED_DATA = DataOptions()  # stamp pairs five times per epoch; the other options only in exploratory runs


class UniVLDRRetriever(TrainedDenseRetriever):
    name = NAME

    @classmethod
    def load_model(cls, folder: Path, resources: Resources) -> UniVLEncoder:
        from mmr.device import resolve_device

        model, tokenizer = load_model(folder)
        words = resources.verbaliser(STAND_INS.text).words
        captioner = None
        if model.config.borrowed_neighbours:
            captioner = NeighbourCaptioner(CaptionPool.load(folder), model.config.borrowed_neighbours)
        text_cache = resources.settings.features_dir / "text-towers" / text_side_tag(model)
        return UniVLEncoder(
            model, tokenizer, words, device=resolve_device(resources.device), captioner=captioner, text_cache=text_cache
        )

    def explain(self, query: Query, doc_id: str) -> dict | None:
        """What an image document's side says in words: its class names and the captions it borrowed."""
        encoder: UniVLEncoder = self.model
        if self.corpus is None or doc_id not in self.corpus or self.corpus[doc_id].modality != "image":
            return None
        rows, features = self._corpus_images
        row = rows[doc_id]
        explanation = {
            "method": self.name,
            "class_names": encoder.words(features.logits[row : row + 1], encoder.model.config.verbal_top)[0],
            "borrowed_captions": [],
        }
        if encoder.captioner is not None:
            borrowed = encoder.captioner.captions(features.pooled[row : row + 1])[0]
            explanation["borrowed_captions"] = [{"caption": text, "weight": weight} for text, weight in borrowed]
            explanation["borrowed_weight"] = encoder.model.config.borrowed_weight
        return explanation

    @cached_property
    def _corpus_images(self) -> tuple[dict[str, int], ImageFeatures]:
        # The index build encoded these already (cached on disk): loaded once, not per explained hit.
        images = self.corpus.of_modality("image")
        return {doc.id: row for row, doc in enumerate(images)}, self.resources.image_features(images, STAND_INS.image)


class DenseInBatchRetriever(UniVLDRRetriever):
    name = INBATCH_NAME


# ----------------------------------------------------------------------------- shared set-up


class TrainingRun:
    """Everything both trainers load: data, dev set, a fresh model, and the frozen-layer cache."""

    def __init__(
        self,
        settings: Settings,
        resources: Resources,
        config: UniVLConfig,
        seed: int,
        data_options: DataOptions = SERVED_DATA,
    ):
        torch.set_num_threads(settings.training_threads)
        self.start = time.time()
        self.rng = seed_everything(seed)  # before the model is built: its new weights are drawn from it
        self.settings = settings
        data = data_options.apply(load_training_data(settings, resources), resources)
        self.fingerprint = data.fingerprint
        words = resources.verbaliser(STAND_INS.text).words
        features = data.image_features(resources)
        self.pool, self.captioner, borrowed = None, None, None
        if config.borrowed_neighbours:
            self.pool = caption_pool(data, resources)
            self.captioner = NeighbourCaptioner(self.pool, config.borrowed_neighbours)
            borrowed = self.captioner.embed(features.pooled)  # never a training image's own caption
        verbal = words(features.logits, config.verbal_top)
        self.train_set: TrainSet = make_train_set(data, features.pooled, verbal, borrowed)
        self.dev = [_dev_data(settings, resources, words, config.verbal_top, c, s, self.captioner) for c, s in DEV_SETS]
        # the image head's input size is the vision backbone's, read from the features it gave
        self.model, self.tokenizer = build_model(replace(config, image_dim=features.pooled.shape[1]))
        self.states = text_states(self.model, self.tokenizer)
        ts = self.train_set
        dev_texts = [text for d in self.dev for text in d.queries + d.doc_texts]
        self.states.add(ts.queries + ts.doc_texts + dev_texts, "frozen text layers")
        log.info(
            "%d examples, %d documents; set up in %.0fs", len(ts.queries), len(ts.doc_ids), time.time() - self.start
        )

    def save(self, folder: Path) -> None:
        """The model and, where it borrows captions, the pool it borrows from (the manifest comes after)."""
        save_model(self.model, folder)
        if self.pool is not None:
            self.pool.save(folder)

    def manifest(self, method: str, seed: int, history: list, config: dict, kept: str) -> Manifest:
        """``dev_mrr_at_10`` is the images setting's dev score of the kept checkpoint, as every method reports."""
        entry = next(h for h in history if h["checkpoint"] == kept)
        seconds = round(time.time() - self.start, 1)
        return Manifest(method, self.fingerprint, entry["dev_stamps"], seed, seconds, config=config, history=history)


def _dev_data(
    settings: Settings,
    resources: Resources,
    words,
    top: int,
    collection: str,
    setting: str,
    captioner: NeighbourCaptioner | None = None,
) -> DevData:
    corpus = load_collection(settings, collection)
    bench = load_benchmark(settings.benchmark_dir, setting, "dev")
    is_image = np.array([d.modality == "image" for d in corpus.documents])
    features = resources.image_features(corpus.of_modality("image"), STAND_INS.image)
    verbal = iter(words(features.logits, top))
    pooled = torch.zeros((len(corpus), features.pooled.shape[1]))
    pooled[np.flatnonzero(is_image)] = torch.as_tensor(np.asarray(features.pooled, np.float32))
    qids = list(bench.queries)
    texts = [next(verbal) if image else d.text for d, image in zip(corpus.documents, is_image)]
    ids = [d.id for d in corpus.documents]
    borrowed = None
    if captioner is not None:
        borrowed = torch.zeros((len(corpus), captioner.pool.caption_vectors.shape[1]))
        borrowed[np.flatnonzero(is_image)] = torch.as_tensor(captioner.embed(features.pooled))
    queries = [bench.queries[q] for q in qids]
    return DevData(collection, qids, queries, bench.qrels, ids, texts, is_image, pooled, borrowed)


def _stage1_config(config: UniVLConfig, data_options: DataOptions = SERVED_DATA) -> dict:
    stages = {"stage1_head": asdict(STAGE1_HEAD), "stage1": asdict(STAGE1)}
    return {"model": asdict(config), **stages, "data": asdict(data_options)}


def _stage1(run: TrainingRun, history: list) -> str:
    """Both phases of stage 1; the model ends at the best dev epoch of either, whose name is returned."""
    args = run.model, run.states, run.train_set, run.dev
    best = run_stage(*args, STAGE1_HEAD, run.rng, "stage1-head", history, head_only=True, score_start=True)
    return run_stage(*args, STAGE1, run.rng, "stage1-inbatch", history, best=best).tag


# ----------------------------------------------------------------------------- trainers


def train_inbatch(
    settings: Settings, resources: Resources, seed: int = 0, hp: DataOptions | None = None, save: bool = True
) -> Manifest:
    """Stage 1 alone: the in-batch-only dense retriever.

    CLIP's two towers are aligned before UniVL-DR fine-tunes them; our image head starts from nothing. So
    stage 1 first trains the head alone against the frozen text tower (cheap: text embeddings computed
    once), then fine-tunes both. Both phases use in-batch negatives only. ``hp`` changes the training data
    (exploratory runs, see training/variants.py); ``save=False`` only reports the dev history.
    """
    hp = hp or SERVED_DATA
    run = TrainingRun(settings, resources, MODEL, seed, hp)
    history: list = []
    kept = _stage1(run, history)
    manifest = run.manifest(INBATCH_NAME, seed, history, _stage1_config(MODEL, hp), kept)
    if save:
        folder = settings.model_dir(INBATCH_NAME)
        run.save(folder)
        manifest.save(folder)  # last: its hash keys the indexes
    return manifest


def _reusable_stage1(folder: Path, fingerprint: str, seed: int) -> Manifest | None:
    try:
        manifest = Manifest.load(folder)
    except (FileNotFoundError, TypeError, ValueError):
        return None
    same = manifest.config == _stage1_config(MODEL) and manifest.data_fingerprint == fingerprint
    return manifest if same and manifest.seed == seed else None


def reuse_stage1(run: TrainingRun, seed: int) -> Manifest | None:
    """Load the matching trained ``dense-inbatch`` model into ``run`` (its manifest), or None if there is none."""
    inbatch = run.settings.model_dir(INBATCH_NAME)
    previous = _reusable_stage1(inbatch, run.fingerprint, seed)
    if previous is not None:
        log.info("reusing the stage-1 model in %s", inbatch)
        run.model, run.tokenizer = load_model(inbatch)
        # the states cached so far stay valid: the loaded model's frozen bottom is the same checkpoint's
    return previous


def hard_negative_stage(
    run: TrainingRun,
    history: list,
    seed: int,
    stage: UniVLStage = STAGE2,
    ranks: tuple[int, int] = MINING_RANKS,
    head_only: bool = STAGE2_HEAD_ONLY,
) -> BestCheckpoint:
    """Stage 2 from the stage-1 model in ``run``: mine with it, then train; leaves the best dev epoch."""
    rng = seed_everything(seed + 1)  # its own seed, so reusing stage 1 gives the same stage 2
    run.model.train()
    negatives = mine(run.model, trainable_texts(run.model, run.states), run.train_set, rng, ranks)
    log.info("mined hard negatives: %d image, %d text", (negatives[0] >= 0).sum(), (negatives[1] >= 0).sum())
    args = run.model, run.states, run.train_set, run.dev, stage, rng, "stage2-hardneg", history, negatives
    return run_stage(*args, head_only=head_only)


def train(settings: Settings, resources: Resources, seed: int = 0) -> Manifest:
    """Stage 1 (or the matching ``dense-inbatch`` model), then modality-balanced hard negatives."""
    run = TrainingRun(settings, resources, MODEL, seed)
    previous = reuse_stage1(run, seed)
    if previous is not None:
        history = list(previous.history)
    else:
        history = []
        _stage1(run, history)
    best = hard_negative_stage(run, history, seed)
    folder = settings.model_dir(NAME)
    run.save(folder)
    config = {
        **_stage1_config(MODEL),
        "stage2": asdict(STAGE2),
        "stage2_head_only": STAGE2_HEAD_ONLY,
        "stage2_mining_ranks": list(MINING_RANKS),
        "reused_stage1": previous is not None,
    }
    manifest = run.manifest(NAME, seed, history, config, best.tag)
    manifest.save(folder)
    return manifest
