"""Changes to what a trainer learns from, for exploratory runs: `mmr train dense-inbatch --set KEY=VALUE`.

Every trained model here stays near the zero-shot verbalisation on the stamps, and the README puts that
down to the training data: few in-domain pairs, openclipart titles in another register ("AZ-lizard" for
"A lizard."), and a head that fits them in a few epochs. Each option tests one remedy of that kind, so
the claim rests on commands anyone can rerun rather than on edited constants:

- ``stamp_repeats``: each stamps train pair comes round this many times per epoch (weight the domain up);
- ``keyword_captions``: each openclipart image gets its keywords ("frog, green, animal") as a second
  caption, closer to the stamps' few-word descriptions than many titles;
- ``augmented_views``: each training image is also seen as this many augmented copies (mirror, white
  margin, small rotation and crop), their frozen features computed once and cached, against a head
  that memorises one fixed feature vector per image;
- ``stamp_fraction`` (with ``stamp_share_seed``): only a share of the stamps' training descriptions,
  for a learning curve: does dev move with the number of in-domain pairs at all?

The defaults are what the served ``dense-inbatch`` and ``univl-dr`` models were trained on: stamp pairs
five times per epoch, chosen by the mean dev MRR@10 of both settings over the data as it is
(docs/findings.md); ``stamp_repeats=1`` is that data.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from mmr.corpus.images import WHITE, pad_to_square
from mmr.encoders.base import ImageFeatures
from mmr.encoders.registry import STAND_INS
from mmr.retrievers.base import Resources
from mmr.training.data import Example, TrainingData
from mmr.types import Document

MAX_KEYWORDS_IN_CAPTION = 6  # the first few keywords name the object; later ones drift ("fenland", "froggy")
VIEW_SEPARATOR = "#view"


@dataclass(frozen=True)
class DataOptions:
    stamp_repeats: int = 5
    keyword_captions: bool = False
    augmented_views: int = 0
    # A seeded share of the stamps' training descriptions kept (with all their stamps; 0 keeps none).
    # Only for the learning curve in docs/findings.md: how dev moves with the in-domain pairs.
    stamp_fraction: float = 1.0
    stamp_share_seed: int = 0  # which descriptions a share keeps (another seed, another draw)

    def __post_init__(self) -> None:
        if not 0.0 <= self.stamp_fraction <= 1.0:
            raise ValueError(f"stamp_fraction must be in [0, 1], got {self.stamp_fraction}")
        if self.stamp_repeats < 1:
            raise ValueError(f"stamp_repeats must be at least 1, got {self.stamp_repeats}")
        if self.augmented_views < 0:
            raise ValueError(f"augmented_views must be 0 or more, got {self.augmented_views}")

    def apply(self, data: TrainingData, resources: Resources) -> TrainingData:
        """``data`` with these options applied: the stamp share first, then views (they copy the image pairs
        as they are), then keyword captions, then the repeats of the stamp pairs."""
        if self.stamp_fraction < 1.0:
            data = with_stamp_share(data, self.stamp_fraction, self.stamp_share_seed)
        if self.augmented_views:
            data = with_augmented_views(data, resources, self.augmented_views)
        if self.keyword_captions:
            data = with_keyword_captions(data)
        if self.stamp_repeats > 1:
            data = with_repeated_stamps(data, self.stamp_repeats)
        return data


@dataclass(frozen=True)
class GridDataOptions(DataOptions):
    """The options a visual-token trainer (MARVEL, CIEA) can take: it reads each image's 7x7 grid, and
    augmented views are cached as pooled features only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.augmented_views:
            raise ValueError("augmented_views: this trainer reads grid features, which the views do not have")


def _source(data: TrainingData, example: Example) -> str:
    return data.documents[example.positive_id].metadata.get("source", "")


def with_repeated_stamps(data: TrainingData, repeats: int) -> TrainingData:
    """Each stamp pair ``repeats`` times. The copies share the pair's group, so the in-batch loss masks a
    copy instead of pushing the image away from its own description."""
    extra = [e for e in data.examples if _source(data, e) == "tuxpaint"] * (repeats - 1)
    return _replace_examples(data, [*data.examples, *extra])


def with_stamp_share(data: TrainingData, fraction: float, seed: int = 0) -> TrainingData:
    """Only a ``fraction`` of the stamps' distinct descriptions (drawn with ``seed``), each with every stamp
    it describes, so that a description's stamps stay together as the splits keep them; other pairs stay."""
    descriptions = sorted({e.group for e in data.examples if _source(data, e) == "tuxpaint"})
    kept = set(random.Random(seed).sample(descriptions, round(fraction * len(descriptions))))
    examples = [e for e in data.examples if _source(data, e) != "tuxpaint" or e.group in kept]
    return _replace_examples(data, examples)


def with_keyword_captions(data: TrainingData, limit: int = MAX_KEYWORDS_IN_CAPTION) -> TrainingData:
    """A second example per openclipart image pair: its first ``limit`` keywords, comma-joined."""
    extra = []
    for example in data.examples:
        doc = data.documents[example.positive_id]
        keywords = [k for k in doc.metadata.get("keywords", "").split(",") if k.strip()]
        if _source(data, example) == "openclipart" and keywords:
            caption = ", ".join(k.strip() for k in keywords[:limit])
            extra.append(Example(caption, example.positive_id, f"keywords:{caption.lower()}"))
    return _replace_examples(data, [*data.examples, *extra])


def _replace_examples(data: TrainingData, examples: list[Example]) -> TrainingData:
    return dataclasses.replace(data, examples=examples)  # documents and cached features stay


@dataclass(frozen=True)
class AugmentedView:
    """One augmented copy of every image, the same each run: drawn from ``seed`` and the image's path.

    Mirror (half the time), a white margin of up to a quarter of the side (the object smaller in the
    frame), a rotation of up to 12 degrees and a crop of up to 10%: changes a clip-art drawing survives,
    unlike colour shifts (the colour is often what a description names: "A red apple.").
    """

    seed: int

    @property
    def key(self) -> str:
        return f"augmented-v1-{self.seed}"

    def __call__(self, image: Image.Image, path: str) -> Image.Image:
        rng = random.Random(f"{self.seed}\0{path}")
        square = pad_to_square(image)
        if rng.random() < 0.5:
            square = ImageOps.mirror(square)
        square = ImageOps.expand(square, border=int(square.width * rng.uniform(0.0, 0.25)), fill=WHITE)
        square = square.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC, fillcolor=WHITE)
        side, cut = square.width, int(square.width * rng.uniform(0.0, 0.1))
        left, top = rng.randint(0, cut), rng.randint(0, cut)
        return square.crop((left, top, side - cut + left, side - cut + top))


def view_id(doc_id: str, view: int) -> str:
    return f"{doc_id}{VIEW_SEPARATOR}{view}"


def with_augmented_views(data: TrainingData, resources: Resources, views: int) -> TrainingData:
    """Every image pair again for each of ``views`` augmented copies of its image, as new image documents
    (same group, so a copy is never a negative of its own query) whose pooled features and logits are
    those of the augmented image. The result holds pooled features only: grid-based trainers cannot use it.
    """
    originals = [data.documents[doc_id] for doc_id in data.image_ids]
    features = [data.image_features(resources)]
    documents = dict(data.documents)
    examples = list(data.examples)
    image_examples = [e for e in data.examples if data.documents[e.positive_id].modality == "image"]
    for view in range(1, views + 1):
        features.append(resources.image_features(originals, STAND_INS.image, view=AugmentedView(view)))
        documents.update({view_id(doc.id, view): _as_view(doc, view) for doc in originals})
        examples += [Example(e.query, view_id(e.positive_id, view), e.group) for e in image_examples]
    # Images first, in feature order (originals, then view 1, 2, ...), then the text documents.
    images = [doc_id for doc_id, doc in documents.items() if doc.modality == "image"]
    ordered = {doc_id: documents[doc_id] for doc_id in images} | {d: documents[d] for d in data.text_ids}
    pooled = ImageFeatures(
        np.concatenate([f.pooled for f in features]), np.concatenate([f.logits for f in features]), None
    )
    return TrainingData(examples, ordered, {False: pooled})


def _as_view(doc: Document, view: int) -> Document:
    return dataclasses.replace(doc, id=view_id(doc.id, view), metadata={**doc.metadata, "view": view})
