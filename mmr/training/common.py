"""Pieces every trainer shares: seeding, contrastive losses, schedules, hard-negative mining, manifests."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MANIFEST = "manifest.json"


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) > 1:  # a batch of one has no in-batch negatives
            yield batch


def info_nce(
    queries: torch.Tensor,
    documents: torch.Tensor,
    scale: float | torch.Tensor,
    groups: Sequence[str] | None = None,
    symmetric: bool = False,
) -> torch.Tensor:
    """In-batch InfoNCE; row i's positive is column i. Columns whose example has the same query
    group as row i (e.g. two stamps both described "A flower.") are masked, not punished."""
    logits = scale * queries @ documents.T
    if groups is not None:
        same = torch.tensor([[a == b for b in groups] for a in groups], dtype=torch.bool)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(queries))
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, target)) / 2
    return loss


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1):
    warmup_steps = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def mine_hard_negatives(
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    doc_is_image: np.ndarray,
    positive_rows: Sequence[int],
    forbidden: Sequence[set[int]],
    rng: np.random.Generator,
    depth: int = 100,
    skip: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One image and one text hard negative per query from the model's own ranks ``skip`` to ``depth``.

    Modality-balanced as UniVL-DR and MARVEL do it: drawing negatives from the top list regardless of
    modality would give mostly one modality and teach a modality preference instead of relevance.
    ``skip`` > 0 leaves the very top out, where unlabelled near-duplicates of the positive (false
    negatives) sit. Returns row indices (-1 where the window held no candidate of that modality).
    """
    scores = query_vectors @ doc_vectors.T
    top = np.argsort(-scores, axis=1)[:, skip:depth]
    image_negatives = np.full(len(query_vectors), -1)
    text_negatives = np.full(len(query_vectors), -1)
    for i, row in enumerate(top):
        excluded = forbidden[i] | {positive_rows[i]}
        candidates = [r for r in row if r not in excluded]
        images = [r for r in candidates if doc_is_image[r]]
        texts = [r for r in candidates if not doc_is_image[r]]
        if images:
            image_negatives[i] = rng.choice(images)
        if texts:
            text_negatives[i] = rng.choice(texts)
    return image_negatives, text_negatives


@dataclass
class Manifest:
    method: str
    data_fingerprint: str
    dev_mrr_at_10: float
    seed: int
    train_seconds: float
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    config: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # dev score per epoch/stage, for the README

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        return cls(**json.loads((folder / MANIFEST).read_text()))


class BestCheckpoint:
    """Keeps the state with the best dev score (early stopping on dev, as the papers do)."""

    def __init__(self) -> None:
        self.score = -1.0
        self.state: dict | None = None
        self.tag: str = ""

    def offer(self, score: float, module: torch.nn.Module, tag: str) -> bool:
        if score > self.score:
            self.score, self.tag = score, tag
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            return True
        return False

    def restore(self, module: torch.nn.Module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


class CheapestWithinTie:
    """The cheapest checkpoint whose dev score is within ``tolerance`` of the best one offered.

    For models with a cost besides their score (a sparse retriever's postings): checkpoints within
    ``tolerance`` are a tie on dev, and a tie goes to the cheaper one. Only states that can still be
    chosen are kept. ``score``, ``tag`` and ``restore`` are those of the chosen one, as BestCheckpoint's.
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self._candidates: list[tuple[float, float, str, dict]] = []  # score, cost, tag, state

    def offer(self, score: float, cost: float, module: torch.nn.Module, tag: str) -> None:
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self._candidates.append((score, cost, tag, state))
        best = max(candidate[0] for candidate in self._candidates)
        self._candidates = [c for c in self._candidates if c[0] >= best - self.tolerance]

    def _chosen(self) -> tuple[float, float, str, dict] | None:
        # Ties on cost (none in practice) go to the higher score.
        return min(self._candidates, key=lambda c: (c[1], -c[0]), default=None)

    @property
    def score(self) -> float:
        chosen = self._chosen()
        return chosen[0] if chosen else -1.0

    @property
    def tag(self) -> str:
        chosen = self._chosen()
        return chosen[2] if chosen else ""

    def restore(self, module: torch.nn.Module) -> None:
        if (chosen := self._chosen()) is not None:
            module.load_state_dict(chosen[3])
