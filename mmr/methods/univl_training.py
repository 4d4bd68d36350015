"""UniVL-DR's two training stages: in-batch negatives, then modality-balanced hard negatives.

Both stages use one loss: a per-query softmax over a set of candidate documents whose row ``i``
positive is column ``i``. Stage 1's candidates are the batch's positives (DPR); stage 2 adds each
query's mined image and text hard negatives, which every other query in the batch also sees.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmr.methods.univl_model import UniVLModel
from mmr.progress import ProgressBar
from mmr.training.common import BestCheckpoint, cosine_with_warmup, mine_hard_negatives, minibatches
from mmr.training.data import mrr_at_10
from mmr.training.stack import DevLog, TextStates, frozen, masked_contrastive, threads, train_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UniVLStage:
    epochs: int
    batch_size: int = 64
    lr_text: float = 3e-5
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    # Early stopping on dev: end the stage after this many epochs in a row that did not improve the best
    # dev score (None: run every epoch). An epoch of the text tower costs ~90 s here.
    patience: int | None = None


def stage2_columns(
    batch: np.ndarray, positive_rows: np.ndarray, image_negatives: np.ndarray, text_negatives: np.ndarray
) -> list[int]:
    """The batch's positives first (so row i's target is column i), then every mined negative that exists."""
    positives = [int(positive_rows[i]) for i in batch]
    negatives = [int(n) for i in batch for n in (image_negatives[i], text_negatives[i]) if n >= 0]
    return positives + negatives


# ----------------------------------------------------------------------------- data


def text_states(model: UniVLModel, tokenizer, batch_size: int = 128) -> TextStates:
    """The frozen bottom of the text tower for every text training touches, computed once per text."""

    def bottom(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokenizer(
            [t if t.strip() else " " for t in texts],
            padding=True,
            truncation=True,
            max_length=model.config.max_length,
            return_tensors="pt",
        )
        with frozen(model):
            return model.text.bottom(batch["input_ids"], batch["attention_mask"]), batch["attention_mask"]

    return TextStates(bottom, batch_size)


@dataclass
class TrainSet:
    """Training examples as rows: documents are images (first, in feature order) then texts."""

    queries: list[str]
    positive_rows: np.ndarray
    relevant: list[set[int]]  # per example: rows relevant to its query group (never its negatives)
    doc_ids: list[str]
    doc_is_image: np.ndarray
    doc_texts: list[str]  # a text document's text; an image document's verbalisation
    pooled: torch.Tensor  # (n_images, image dim), row r of an image document is its pooled feature row
    borrowed: torch.Tensor | None = None  # (n_images, dim) borrowed-caption vectors, where the model uses them


def make_train_set(data, pooled: np.ndarray, verbal_words: list[str], borrowed: np.ndarray | None = None) -> TrainSet:
    doc_ids = list(data.image_ids) + list(data.text_ids)
    row = {doc_id: r for r, doc_id in enumerate(doc_ids)}
    texts = list(verbal_words) + [data.documents[d].text for d in data.text_ids]
    positives = np.array([row[e.positive_id] for e in data.examples])
    by_group: dict[str, set[int]] = {}
    for example, r in zip(data.examples, positives):
        by_group.setdefault(example.group, set()).add(int(r))
    relevant = [by_group[e.group] | {int(r)} for e, r in zip(data.examples, positives)]
    is_image = np.arange(len(doc_ids)) < len(data.image_ids)
    return TrainSet(
        [e.query for e in data.examples],
        positives,
        relevant,
        doc_ids,
        is_image,
        texts,
        torch.as_tensor(np.asarray(pooled, np.float32)),
        None if borrowed is None else torch.as_tensor(np.asarray(borrowed, np.float32)),
    )


@dataclass
class DevData:
    """A dev benchmark over one collection; image documents are seen only as pixels and verbalisation."""

    name: str
    qids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, int]]
    doc_ids: list[str]
    doc_texts: list[str]  # a text document's text; an image document's verbalisation (never its caption)
    is_image: np.ndarray
    pooled: torch.Tensor  # (n_docs, channels), zeros for text documents
    borrowed: torch.Tensor | None = None  # (n_docs, dim) borrowed-caption vectors, zeros for text documents


# ----------------------------------------------------------------------------- encoding

TextFn = Callable[[Sequence[str]], torch.Tensor]  # texts -> (n, dim) normalised embeddings


def trainable_texts(model: UniVLModel, states: TextStates) -> TextFn:
    return lambda texts: model.text_embedding(*states.batch(texts))


@torch.no_grad()
def frozen_texts(model: UniVLModel, states: TextStates, chunk: int = 256) -> TextFn:
    """Every cached text through the current text tower once, then looked up: for a phase that trains
    only the image head, where recomputing unchanging text embeddings each step would be waste."""
    texts = states.texts
    model.eval()
    vectors = torch.cat(
        [model.text_embedding(*states.batch(texts[s : s + chunk])) for s in range(0, len(texts), chunk)]
    )
    model.train()
    row = {text: i for i, text in enumerate(texts)}
    return lambda batch: vectors[[row[t] for t in batch]]


def embed_documents(
    model: UniVLModel,
    text_fn: TextFn,
    doc_texts: Sequence[str],
    is_image: np.ndarray,
    pooled: torch.Tensor,
    borrowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Documents in the given order: images as projection + verbalisation (+ borrowed captions), texts
    through the text tower."""
    is_image = np.asarray(is_image, bool)
    out = torch.empty((len(doc_texts), model.dim))
    encode = [i for i, img in enumerate(is_image) if not img or model.config.verbalise]
    text_vectors = text_fn([doc_texts[i] for i in encode]) if encode else None
    position = {i: k for k, i in enumerate(encode)}
    image_rows = np.flatnonzero(is_image)
    text_rows = np.flatnonzero(~is_image)
    if len(text_rows):
        out[text_rows] = text_vectors[[position[i] for i in text_rows]]
    if len(image_rows):
        verbal = text_vectors[[position[i] for i in image_rows]] if model.config.verbalise else None
        lent = None if borrowed is None else borrowed[image_rows]
        out[image_rows] = model.image_embedding(pooled[image_rows], verbal, lent)
    return out


def embed_rows(model: UniVLModel, text_fn: TextFn, ts: TrainSet, rows: Sequence[int]) -> torch.Tensor:
    rows = np.asarray(rows, dtype=int)
    pooled = torch.zeros((len(rows), ts.pooled.shape[1]))
    image = ts.doc_is_image[rows]
    pooled[np.flatnonzero(image)] = ts.pooled[rows[image]]
    borrowed = None
    if ts.borrowed is not None:
        borrowed = torch.zeros((len(rows), ts.borrowed.shape[1]))
        borrowed[np.flatnonzero(image)] = ts.borrowed[rows[image]]
    return embed_documents(model, text_fn, [ts.doc_texts[r] for r in rows], image, pooled, borrowed)


@torch.no_grad()
def encode_in_chunks(fn, n: int, chunk: int = 256) -> np.ndarray:
    return np.concatenate([fn(np.arange(s, min(s + chunk, n))).numpy() for s in range(0, n, chunk)])


def dev_mrr(model: UniVLModel, text_fn: TextFn, dev: DevData) -> float:
    model.eval()
    queries = encode_in_chunks(lambda idx: text_fn([dev.queries[i] for i in idx]), len(dev.queries))
    docs = encode_in_chunks(
        lambda idx: embed_documents(
            model,
            text_fn,
            [dev.doc_texts[i] for i in idx],
            dev.is_image[idx],
            dev.pooled[idx],
            None if dev.borrowed is None else dev.borrowed[idx],
        ),
        len(dev.doc_ids),
    )
    model.train()
    return mrr_at_10(docs, dev.doc_ids, queries, dev.qids, dev.qrels)


def mine(model: UniVLModel, text_fn: TextFn, ts: TrainSet, rng: np.random.Generator, ranks: tuple[int, int] = (0, 100)):
    """One image and one text hard negative per example from the model's own ranks ``ranks[0]`` to
    ``ranks[1]``. The default is the paper's top 100; the served window is univl_dr.MINING_RANKS."""
    model.eval()
    queries = encode_in_chunks(lambda idx: text_fn([ts.queries[i] for i in idx]), len(ts.queries))
    docs = encode_in_chunks(lambda idx: embed_rows(model, text_fn, ts, idx), len(ts.doc_ids))
    model.train()
    skip, depth = ranks
    return mine_hard_negatives(queries, docs, ts.doc_is_image, ts.positive_rows, ts.relevant, rng, depth, skip)


# ----------------------------------------------------------------------------- loop


def _optimizer(model: UniVLModel, stage: UniVLStage, head_only: bool) -> torch.optim.Optimizer:
    head = [p for name, p in model.named_parameters() if not name.startswith("text.")]
    groups = [{"params": head, "lr": stage.lr_head}]
    if not head_only:
        groups.append({"params": [p for p in model.text.parameters() if p.requires_grad], "lr": stage.lr_text})
    return torch.optim.AdamW(groups, weight_decay=stage.weight_decay)


def train_epoch(
    model, optimizer, scheduler, text_fn: TextFn, ts: TrainSet, stage: UniVLStage, rng, negatives, desc: str
) -> float:
    def loss_of(batch: np.ndarray) -> torch.Tensor:
        if negatives is None:
            columns = [int(ts.positive_rows[i]) for i in batch]
        else:
            columns = stage2_columns(batch, ts.positive_rows, *negatives)
        queries = text_fn([ts.queries[i] for i in batch])
        documents = embed_rows(model, text_fn, ts, columns)
        return masked_contrastive(queries, documents, model.scale, columns, [ts.relevant[i] for i in batch])

    model.train()
    batches = list(minibatches(len(ts.queries), stage.batch_size, rng))
    trained = [p for p in model.parameters() if p.requires_grad]
    return train_steps(batches, loss_of, optimizer, scheduler, clip=trained, desc=desc, unit="batch")


def run_stage(
    model: UniVLModel,
    states: TextStates,
    ts: TrainSet,
    dev: Sequence[DevData],
    stage: UniVLStage,
    rng: np.random.Generator,
    tag: str,
    history: list,
    negatives=None,
    head_only: bool = False,
    best: BestCheckpoint | None = None,
    score_start: bool = False,
) -> BestCheckpoint:
    """Train ``stage.epochs`` epochs, scoring every dev set after each; leaves the model at its best epoch
    by the mean dev MRR@10 (of this stage, or of every stage that shared ``best``).

    ``head_only`` freezes the text tower too (its embeddings are then computed once, not per step).
    ``score_start`` also offers the untrained model (epoch 0): with the zero-initialised head that is
    the verbalisation alone, so training can only be kept where dev says it helped.
    """
    text_fn = frozen_texts(model, states) if head_only else trainable_texts(model, states)
    optimizer = _optimizer(model, stage, head_only)
    steps = stage.epochs * math.ceil(len(ts.queries) / stage.batch_size)
    scheduler = cosine_with_warmup(optimizer, steps, stage.warmup)
    dev_log = DevLog(best, history)

    def score(epoch: int, loss: float | None, started: float) -> None:
        dev_log.record(
            f"{tag} epoch {epoch}",
            {d.name: dev_mrr(model, text_fn, d) for d in dev},
            model,
            stage=tag,
            epoch=epoch,
            loss=None if loss is None else round(loss, 4),
            scale=round(float(model.scale.detach()), 2),
            seconds=round(time.time() - started, 1),
        )

    # The head alone is a small MLP: a second thread buys nothing and, on a busy machine, costs
    # several times the work in thread synchronisation.
    with threads(1 if head_only else torch.get_num_threads()):
        if score_start:
            score(0, None, time.time())
        for epoch in ProgressBar(range(1, stage.epochs + 1), desc=tag, unit="epoch"):
            start = time.time()
            loss = train_epoch(model, optimizer, scheduler, text_fn, ts, stage, rng, negatives, f"{tag} epoch {epoch}")
            score(epoch, loss, start)
            if dev_log.out_of_patience(stage.patience) and epoch < stage.epochs:
                log.info(
                    "%s: no dev gain in %d epoch(s); stopped after %d of %d", tag, dev_log.stale, epoch, stage.epochs
                )
                break
    dev_log.restore(model)
    log.info("%s: kept %s (dev MRR@10 %.4f)", tag, dev_log.best.tag, dev_log.best.score)
    return dev_log.best
