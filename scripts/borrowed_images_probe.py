"""Borrowed images, the other direction: does a text query gain from the training images whose captions
it resembles? Stamps dev MRR@10, no training, nothing saved.

Borrowed captions (encoders/neighbours.py) describe an image document by the captions of the training
images that look like it. The mirror image: a query borrows the *images* of the training captions
closest to it (frozen MiniLM; the m nearest, weighted by softmax(similarity / temperature)), and a
document scores by how much it looks like them (cosine of mean-centred CNN features, as the captioner
measures it). With "never a copy", a document is never matched through itself or a near copy (raw
cosine >= 0.85), the captioner's own rule, so the train-split stamps among the ranked documents do not
find their own captions; "copies too" lets them. Each line adds the borrowed-image score at a few
weights to the borrowed-captions baseline (the zero-shot verbalisation + 0.5 x 5 borrowed captions).

The pool is the served training data; dev only, the test split is never read. It prints 18 settings
of one idea on 111 dev queries, so its best line is an optimistic estimate of what a chosen setting
would keep on test.

    PYTHONPATH=. .venv/bin/python scripts/borrowed_images_probe.py
"""

from __future__ import annotations

import argparse

import numpy as np

from mmr.config import Settings
from mmr.encoders.base import l2_normalise
from mmr.encoders.neighbours import NEAR_COPY_COSINE, NeighbourCaptioner
from mmr.methods.univl_dr import MODEL, TEXT_ENCODER
from mmr.retrievers.base import Resources
from mmr.training.data import mrr_at_10_of_scores
from scripts.borrowed_captions_probe import load_dev_probe


def borrowed_image_weights(similarity: np.ndarray, count: int, temperature: float) -> np.ndarray:
    """(queries, pool) weights: softmax(similarity / temperature) over each query's ``count`` nearest captions."""
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :count]
    top = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.exp((top - top[:, :1]) / temperature)
    out = np.zeros_like(similarity)
    np.put_along_axis(out, nearest, weights / weights.sum(axis=1, keepdims=True), axis=1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, nargs="+", default=[5, 20, 50], help="nearest captions (m)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="borrowed-image weights")
    args = parser.parse_args()

    settings = Settings()
    resources = Resources(settings)
    stamps, doc_ids, bench, qids, queries, features, pool = load_dev_probe(settings, resources)

    verbal = resources.verbaliser(TEXT_ENCODER).embed(features.logits)
    captioner = NeighbourCaptioner(pool, MODEL.borrowed_neighbours)
    baseline = queries @ l2_normalise(verbal + MODEL.borrowed_weight * captioner.embed(features.pooled)).T

    def score(scores: np.ndarray) -> str:
        return f"{mrr_at_10_of_scores(scores, doc_ids, qids, bench.qrels):.3f}"

    mean = pool.features.mean(axis=0)
    looks_like = l2_normalise(features.pooled - mean) @ l2_normalise(pool.features - mean).T  # (docs, pool)
    copies = l2_normalise(features.pooled) @ l2_normalise(pool.features).T >= NEAR_COPY_COSINE
    caption_similarity = queries @ pool.caption_vectors.T  # (queries, pool)

    print(f"pool: {len(pool.ids)} training images; {len(qids)} dev queries over {len(stamps)} stamps")
    print(f"borrowed-captions baseline: {score(baseline)}")
    print(
        "| documents matched | m | temperature | borrowed images alone | "
        + " | ".join(f"baseline + {w} x borrowed images" for w in args.weights)
        + " |"
    )
    print("|---|---|---|---|" + "---|" * len(args.weights))
    for rule, matrix in (("never a copy", np.where(copies, 0.0, looks_like)), ("copies too", looks_like)):
        for count in args.captions:
            for temperature in args.temperatures:
                borrowed = borrowed_image_weights(caption_similarity, count, temperature) @ matrix.T
                cells = [score(borrowed)] + [score(baseline + w * borrowed) for w in args.weights]
                print(f"| {rule} | {count} | {temperature} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
