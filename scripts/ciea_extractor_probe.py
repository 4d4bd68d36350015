"""What the served CIEA model's complementary-information extractor does to the dev stamps' visual tokens.

CIEA's extractor stage lowers stamps dev below its start (docs/findings.md; `scripts/ciea_variants.py`
shows that it is the extractor's own training that does it). This reads the trained extractor on the
dev stamps (images only, no queries or labels) and prints:

- the complement weights w = 1 - max_j (cos(patch, caption word j) + 1) / 2, against the image's own
  caption (its verbalisation) and, as a reference, against another image's caption: if the weights
  barely differ between patches, there is no "complementary" patch for the layer to single out;
- the attention the layer pays (entropy against the uniform distribution's);
- how far the layer moves the patches (norm of the change over the patch's norm) and whether it makes
  the 49 patches of an image more alike (mean cosine between them, before and after).

Run after `python -m mmr train ciea` (a few seconds once the image features are cached):

    PYTHONPATH=. .venv/bin/python scripts/ciea_extractor_probe.py
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.splits import load_benchmark
from mmr.methods import ciea
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import IMAGE_ENCODER


def mean_pairwise_cosine(patches: torch.Tensor) -> float:
    unit = F.normalize(patches, dim=-1)
    return float((unit @ unit.transpose(1, 2)).mean())


def describe(weights: torch.Tensor) -> str:
    values = weights.numpy()
    quantiles = ", ".join(f"{q:.3f}" for q in np.quantile(values, [0.1, 0.5, 0.9]))
    return (
        f"mean {values.mean():.3f}, spread within an image (std) {values.std(axis=1).mean():.3f}, "
        f"10/50/90% quantiles {quantiles}, below the 1e-5 mask {float((values < 1e-5).mean()):.3f}"
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    settings = Settings()
    folder = settings.models_dir / ciea.NAME
    if not (folder / "manifest.json").exists():
        raise SystemExit("no trained CIEA model: run `python -m mmr train ciea` first")
    resources = Resources(settings)
    served = ciea.CieaRetriever.load_model(folder, resources)  # the model as the retriever loads it
    encoder = served.encoder
    benchmark = load_benchmark(settings.benchmark_dir, "images", "dev")
    dev_ids = {doc for judged in benchmark.qrels.values() for doc in judged}
    images = [doc for doc in load_collection(settings, "stamps").of_modality("image") if doc.id in dev_ids]
    features = resources.image_features(images, IMAGE_ENCODER, keep_grid=True)
    grid = torch.from_numpy(np.asarray(features.grid, np.float32))
    captions = served.captioner(features.logits)
    extractor = encoder.extractor
    with torch.no_grad():
        patches = encoder.visual(grid)
        ids, mask = encoder.caption_tokens(captions, len(captions))
        words = encoder.word_embeddings(ids)
        word_mask = mask.clone()
        word_mask[torch.arange(len(captions)), mask.sum(1) - 1] = 0  # the closing [SEP], as image_inputs does
        own = extractor.complement_weights(patches, words, word_mask)
        other = torch.roll(torch.arange(len(captions)), 1)  # each image against its neighbour's caption
        foreign = extractor.complement_weights(patches, words[other], word_mask[other])
        _, attention = extractor.attention(extractor.norm1(patches), own)
        entropy = -(attention.clamp_min(1e-12).log() * attention).sum(-1)
        rewritten = extractor(patches, words, word_mask)
    change = ((rewritten - patches).norm(dim=-1) / patches.norm(dim=-1)).mean()
    largest = float(attention.max(-1).values.mean())
    print(f"dev stamps: {len(images)} images, {patches.shape[1]} patches each")
    print(f"complement weights, own caption:       {describe(own)}")
    print(f"complement weights, another's caption: {describe(foreign)}")
    print(
        f"attention entropy: mean {float(entropy.mean()):.3f} (uniform over {patches.shape[1]} patches: "
        f"{math.log(patches.shape[1]):.3f}); largest probability per row, mean {largest:.3f}"
    )
    print(f"patch change by the extractor, |out - in| / |in|: mean {float(change):.2f}")
    print(
        f"mean cosine between an image's patches: before {mean_pairwise_cosine(patches):.3f}, "
        f"after {mean_pairwise_cosine(rewritten):.3f}"
    )


if __name__ == "__main__":
    main()
