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
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from mmr.encoders.base import batched
from mmr.methods.univl_model import UniVLModel
from mmr.progress import ProgressBar
from mmr.training.common import BestCheckpoint, cosine_with_warmup, mine_hard_negatives, minibatches
from mmr.training.data import mrr_at_10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageSettings:
    epochs: int
    batch_size: int = 64
    lr_text: float = 3e-5
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    # Early stopping on dev: end the stage after this many epochs in a row that did not improve the best
    # dev score (None: run every epoch). An epoch of the text tower costs ~90 s here.
    patience: int | None = None


# ----------------------------------------------------------------------------- loss


def candidate_mask(relevant: Sequence[set[int]], columns: Sequence[int]) -> torch.Tensor:
    """``allowed[i, j]``: may column ``j`` (a document row) compete in query ``i``'s softmax?

    Column ``i`` is query ``i``'s positive. Any other column holding a document relevant to query ``i``
    (the same image or gloss again, or the positive of an example with the same query text) is a false
    negative and is masked rather than pushed away.
    """
    allowed = torch.tensor([[col not in rel for col in columns] for rel in relevant], dtype=torch.bool)
    own = torch.arange(len(relevant))
    allowed[own, own] = True
    return allowed


def contrastive_loss(
    queries: torch.Tensor, documents: torch.Tensor, scale: torch.Tensor | float, allowed: torch.Tensor
) -> torch.Tensor:
    logits = (scale * queries @ documents.T).masked_fill(~allowed, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(queries)))


def stage2_columns(
    batch: np.ndarray, positive_rows: np.ndarray, image_negatives: np.ndarray, text_negatives: np.ndarray
) -> list[int]:
    """The batch's positives first (so row i's target is column i), then every mined negative that exists."""
    positives = [int(positive_rows[i]) for i in batch]
    negatives = [int(n) for i in batch for n in (image_negatives[i], text_negatives[i]) if n >= 0]
    return positives + negatives


# ----------------------------------------------------------------------------- data


class BottomCache:
    """Frozen bottom-layer states of every text training touches, computed once (float16)."""

    def __init__(self, model: UniVLModel, tokenizer, batch_size: int = 128):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.states: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def add(self, texts: Sequence[str], progress: str | bool = False) -> None:
        todo = sorted({t for t in texts if t not in self.states}, key=len)  # similar lengths pad less
        was_training = self.model.training
        self.model.eval()
        for chunk in batched(todo, self.batch_size, progress):
            batch = self.tokenizer(
                [t if t.strip() else " " for t in chunk],
                padding=True,
                truncation=True,
                max_length=self.model.config.max_length,
                return_tensors="pt",
            )
            hidden = self.model.text.bottom(batch["input_ids"], batch["attention_mask"])
            for text, states, length in zip(chunk, hidden, batch["attention_mask"].sum(1).tolist()):
                self.states[text] = states[:length].to(torch.float16).clone()
        self.model.train(was_training)

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states = [self.states[t] for t in texts]
        hidden = pad_sequence(states, batch_first=True).float()
        mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in states], batch_first=True)
        return hidden, mask


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


def trainable_texts(model: UniVLModel, cache: BottomCache) -> TextFn:
    return lambda texts: model.text_embedding(*cache.batch(texts))


@torch.no_grad()
def frozen_texts(model: UniVLModel, cache: BottomCache, chunk: int = 256) -> TextFn:
    """Every cached text through the current text tower once, then looked up: for a phase that trains
    only the image head, where recomputing unchanging text embeddings each step would be waste."""
    texts = list(cache.states)
    model.eval()
    vectors = torch.cat([model.text_embedding(*cache.batch(texts[s : s + chunk])) for s in range(0, len(texts), chunk)])
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


def _optimizer(model: UniVLModel, stage: StageSettings, head_only: bool) -> torch.optim.Optimizer:
    head = [p for name, p in model.named_parameters() if not name.startswith("text.")]
    groups = [{"params": head, "lr": stage.lr_head}]
    if not head_only:
        groups.append({"params": [p for p in model.text.parameters() if p.requires_grad], "lr": stage.lr_text})
    return torch.optim.AdamW(groups, weight_decay=stage.weight_decay)


def train_epoch(
    model, optimizer, scheduler, text_fn: TextFn, ts: TrainSet, stage: StageSettings, rng, negatives, desc: str
) -> float:
    model.train()
    losses = []
    batches = list(minibatches(len(ts.queries), stage.batch_size, rng))
    for batch in ProgressBar(batches, desc=desc, unit="batch", leave=False):
        if negatives is None:
            columns = [int(ts.positive_rows[i]) for i in batch]
        else:
            columns = stage2_columns(batch, ts.positive_rows, *negatives)
        queries = text_fn([ts.queries[i] for i in batch])
        documents = embed_rows(model, text_fn, ts, columns)
        allowed = candidate_mask([ts.relevant[i] for i in batch], columns)
        loss = contrastive_loss(queries, documents, model.scale, allowed)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return float(np.mean(losses))


@contextmanager
def _threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_stage(
    model: UniVLModel,
    cache: BottomCache,
    ts: TrainSet,
    dev: Sequence[DevData],
    stage: StageSettings,
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
    text_fn = frozen_texts(model, cache) if head_only else trainable_texts(model, cache)
    optimizer = _optimizer(model, stage, head_only)
    steps = stage.epochs * math.ceil(len(ts.queries) / stage.batch_size)
    scheduler = cosine_with_warmup(optimizer, steps, stage.warmup)
    best = best or BestCheckpoint()

    def score(epoch: int, loss: float | None, started: float) -> bool:
        scores = {f"dev_{d.name}": round(dev_mrr(model, text_fn, d), 4) for d in dev}
        selection = round(float(np.mean(list(scores.values()))), 4)
        checkpoint = f"{tag} epoch {epoch}"
        history.append(
            {
                "checkpoint": checkpoint,
                "stage": tag,
                "epoch": epoch,
                "loss": None if loss is None else round(loss, 4),
                **scores,
                "dev_mean": selection,
                "scale": round(float(model.scale.detach()), 2),
                "seconds": round(time.time() - started, 1),
            }
        )
        log.info("%s: loss %s, dev MRR@10 %s", checkpoint, "-" if loss is None else f"{loss:.3f}", scores)
        return best.offer(selection, model, checkpoint)

    # The head alone is a small MLP: a second thread buys nothing and, on a busy machine, costs
    # several times the work in thread synchronisation.
    threads = 1 if head_only else torch.get_num_threads()
    if score_start:
        with _threads(threads):
            score(0, None, time.time())
    stale = 0
    for epoch in ProgressBar(range(1, stage.epochs + 1), desc=tag, unit="epoch"):
        start = time.time()
        with _threads(threads):
            loss = train_epoch(model, optimizer, scheduler, text_fn, ts, stage, rng, negatives, f"{tag} epoch {epoch}")
            improved = score(epoch, loss, start)
        stale = 0 if improved else stale + 1
        if stage.patience is not None and stale >= stage.patience and epoch < stage.epochs:
            log.info("%s: no dev gain in %d epoch(s); stopped after epoch %d of %d", tag, stale, epoch, stage.epochs)
            break
    best.restore(model)
    log.info("%s: kept %s (dev MRR@10 %.4f)", tag, best.tag, best.score)
    return best
