"""Teaching the head's vocabulary projector to name words before it distils.

The paper's projector is DistilBERT's masked-language-model head: it already maps a hidden state to the
words that state means. The stand-in text backbone ships without one, so our head starts from the tied
word-embedding matrix alone, and a pooled sentence vector lies near no particular word's input embedding:
after distillation "flower" was the 404th of 569 terms of "a red flower". So before distilling, the head
learns to put its weight on a text's own words from the teacher's vector of that text: a softmax over the
usable vocabulary against the uniform distribution over the text's content tokens (stop words and punctuation left out).
That is the MLM head's objective with the whole text masked at once, a bag-of-words reconstruction. Every
text the training set holds takes part (training queries: captions and lemmas; text documents: glosses), and
each image learns the content tokens of the queries paired with it, as the paper's expansion control
anchors images to their captions.
"""

from __future__ import annotations

import numpy as np
import torch

from mmr.methods.lsr.head import SparseHead, Vocabulary
from mmr.methods.lsr.words import is_readable
from mmr.progress import ProgressBar
from mmr.training.common import minibatches


def content_terms(vocabulary: Vocabulary, terms: np.ndarray) -> np.ndarray:
    """The term ids a reader would call content: words and the pieces words are made of, no stop words,
    no punctuation."""
    names = vocabulary.terms(terms)
    keep = [t for t, name in zip(terms, names, strict=True) if is_readable(name) or name.startswith("##")]
    return np.asarray(keep, dtype=np.int64)


def projection_targets(tables, vocabulary: Vocabulary) -> tuple[torch.Tensor, list[np.ndarray]]:
    """(teacher vectors, content term ids) for every text and image of the training tables that has any."""
    image_terms: list[set[int]] = [set() for _ in range(tables.images)]
    query_content = [content_terms(vocabulary, terms) for terms in tables.query_terms]
    for query, document in zip(tables.query_row, tables.document_row, strict=True):
        if document < tables.images:
            image_terms[document].update(query_content[query].tolist())
    rows, targets = [], []
    for row, terms in enumerate(query_content):
        rows.append(tables.queries[row])
        targets.append(terms)
    for row, terms in enumerate(tables.document_terms):
        content = np.asarray(sorted(image_terms[row]), np.int64) if terms is None else content_terms(vocabulary, terms)
        rows.append(tables.documents[row])
        targets.append(content)
    keep = [i for i, terms in enumerate(targets) if len(terms)]
    return torch.stack([rows[i] for i in keep]), [targets[i] for i in keep]


def reconstruction_loss(head: SparseHead, vectors: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the head's softmax over usable terms against uniform weight on each row's terms."""
    logits = head.decoder(head.norm(head.project(vectors))).masked_fill(~head.usable, float("-inf"))
    target = allowed.float() / allowed.sum(dim=1, keepdim=True)
    return -(target * logits.log_softmax(dim=1).masked_fill(~allowed, 0.0)).sum(dim=1).mean()


def pretrain_projector(
    head: SparseHead,
    vectors: torch.Tensor,
    targets: list[np.ndarray],
    vocabulary: Vocabulary,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
) -> list[float]:
    """Fits every part of the head to the targets; answers the mean loss of each epoch."""
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate)
    losses = []
    head.train()
    for epoch in range(1, epochs + 1):
        total, batches = 0.0, list(minibatches(len(targets), batch_size, rng))
        for batch in ProgressBar(batches, desc=f"lsr projector {epoch}", unit="batch", leave=False):
            loss = reconstruction_loss(head, vectors[batch], vocabulary.mask([targets[i] for i in batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        losses.append(round(total / max(1, len(batches)), 4))
    return losses


@torch.inference_mode()
def own_word_first(head: SparseHead, vectors: torch.Tensor, own_terms: list[np.ndarray]) -> float:
    """Share of texts whose heaviest term (expanded) is one of their own tokens."""
    was_training = head.training
    head.eval()
    heaviest = head(vectors).argmax(dim=1).numpy()
    head.train(was_training)
    hits = [int(top) in set(terms.tolist()) for top, terms in zip(heaviest, own_terms, strict=True) if len(terms)]
    return float(np.mean(hits)) if hits else 0.0
