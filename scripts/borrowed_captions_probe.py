"""How much do borrowed captions add before any training? Stamps dev MRR@10 of untrained image sides.

Each image document is scored, against the dev queries embedded by the frozen MiniLM, as:
the zero-shot verbalisation (softmax-weighted ImageNet class names, the baseline), the top class
names as one text (what the UniVL-DR models feed their text tower), the borrowed captions alone
(encoders/neighbours.py: the k nearest training images' captions, never the image's own or a near
copy's), and each verbalisation plus the borrowed vector at a few weights. The pool is the served
training data (openclipart titles plus the stamps' train split, near copies of held-out stamps
dropped); the test split is never read, and dev only, as every checkpoint here is chosen on it.

With ``--visual-token-model NAME`` (a trained MARVEL or CIEA folder under index_store/models) it
also scores that model's image documents with each caption it could carry, without training:
none, the top 5 ImageNet class names, or the text of the 1, 3 or 5 nearest borrowed captions.

    PYTHONPATH=. .venv/bin/python scripts/borrowed_captions_probe.py [--visual-token-model marvel]
"""

from __future__ import annotations

import argparse

import numpy as np

from mmr.config import Settings
from mmr.corpus.splits import load_benchmark
from mmr.encoders.base import l2_normalise
from mmr.encoders.neighbours import NeighbourCaptioner
from mmr.methods.univl_dr import MODEL, SERVED_DATA, TEXT_ENCODER
from mmr.retrievers.base import Resources
from mmr.training.data import IMAGE_ENCODER, caption_pool, load_dev_set, load_training_data, mrr_at_10


def load_dev_probe(settings: Settings, resources: Resources) -> tuple:
    """What the borrowed-caption probes score: the dev stamps, their ids, the dev benchmark, its query ids,
    the queries embedded by the frozen MiniLM, the stamps' frozen image features and the served pool."""
    stamps = load_dev_set(settings).image_documents
    bench = load_benchmark(settings.benchmark_dir, "images", "dev")
    qids = list(bench.queries)
    queries = resources.encoder(TEXT_ENCODER).encode([bench.queries[q] for q in qids])
    features = resources.image_features(stamps, IMAGE_ENCODER)
    pool = caption_pool(SERVED_DATA.apply(load_training_data(settings, resources), resources), resources)
    return stamps, [doc.id for doc in stamps], bench, qids, queries, features, pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neighbours", type=int, nargs="+", default=[1, 5, 20], help="k values to score")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="borrowed weights")
    parser.add_argument("--visual-token-model", help="also score this trained MARVEL/CIEA model's captions")
    args = parser.parse_args()

    settings = Settings()
    resources = Resources(settings)
    stamps, doc_ids, bench, qids, queries, features, pool = load_dev_probe(settings, resources)
    text = resources.encoder(TEXT_ENCODER)
    verbaliser = resources.verbaliser(TEXT_ENCODER)
    sides = {
        "class names, softmax-weighted (zero-shot baseline)": verbaliser.embed(features.logits),
        f"top {MODEL.verbal_top} class names as one text (UniVL-DR's words)": text.encode(
            verbaliser.words(features.logits, MODEL.verbal_top)
        ),
    }

    def score(vectors: np.ndarray) -> str:
        return f"{mrr_at_10(vectors, doc_ids, queries, qids, bench.qrels):.3f}"

    print(f"pool: {len(pool.ids)} training images; {len(qids)} dev queries over {len(stamps)} stamps")
    print("| image side | " + " | ".join(f"k={k}" for k in args.neighbours) + " |")
    print("|---|" + "---|" * len(args.neighbours))
    borrowed = {k: NeighbourCaptioner(pool, k).embed(features.pooled) for k in args.neighbours}
    print("| borrowed captions alone | " + " | ".join(score(borrowed[k]) for k in args.neighbours) + " |")
    for name, verbal in sides.items():
        print(f"| {name}, alone | " + " | ".join(score(verbal) for _ in args.neighbours) + " |")
        for weight in args.weights:
            cells = [score(l2_normalise(verbal + weight * borrowed[k])) for k in args.neighbours]
            print(f"| {name} + {weight} x borrowed | " + " | ".join(cells) + " |", flush=True)
    if args.visual_token_model:
        score_visual_captions(args.visual_token_model, settings, resources, pool, stamps, bench)


def score_visual_captions(name: str, settings, resources, pool, stamps, bench) -> None:
    """A MARVEL/CIEA model's image documents with each caption it could carry, scored as they are."""
    from mmr.methods.ciea import class_name_captioner
    from mmr.methods.visual_captions import borrowed_captioner
    from mmr.retrievers import retriever_spec

    model = retriever_spec(name).retriever_class().load_model(settings.models_dir / name, resources)
    features = resources.image_features(stamps, IMAGE_ENCODER, keep_grid=True)
    qids = list(bench.queries)
    queries = model.encode_texts([bench.queries[q] for q in qids])
    captioners = {"none (image-only)": None, "top 5 class names": class_name_captioner(5)}
    captioners |= {f"{n} borrowed caption(s)": borrowed_captioner(pool, n) for n in (1, 3, 5)}
    print(f"\n| {name}'s image documents, caption | dev MRR@10 |\n|---|---|")
    for label, captioner in captioners.items():
        model.captioner = captioner
        documents = model.encode_images(features, progress=False)
        score = mrr_at_10(documents, [d.id for d in stamps], queries, qids, bench.qrels)
        print(f"| {label} | {score:.3f} |", flush=True)


if __name__ == "__main__":
    main()
