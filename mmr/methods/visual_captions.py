"""Caption text for the visual-token models' image documents (MARVEL, CIEA): borrowed captions.

MARVEL and CIEA append an image's caption after its visual tokens. Here no image document has a
caption of its own (a stamp's description is its query), so it borrows the captions of the training
images that look most like it (encoders/neighbours.py), from the image alone. The pool is saved in
the model's folder, with the number of captions in the model's saved settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmr.encoders.base import ImageFeatures
from mmr.encoders.neighbours import CaptionPool, NeighbourCaptioner
from mmr.encoders.registry import STAND_INS
from mmr.methods.visual_states import TrainingTable
from mmr.retrievers.base import Resources

# Captions in an image document's caption text: 3 beat 5 on dev, since the caption holds 24 wordpieces and more
# captions overflow it (`scripts/borrowed_captions_probe.py --visual-token-model marvel`, docs/findings.md).
BORROWED_CAPTIONS = 3
SAVED_KEY = "borrowed_captions"  # in the model's saved settings: how many captions its documents carry

Captioner = Callable[[ImageFeatures], list[str]]


def table_caption_pool(table: TrainingTable, resources: Resources) -> CaptionPool:
    """The training table's images with their own captions: what every image document borrows from."""
    if table.pooled is None or table.image_captions is None:
        raise ValueError("this training table has no pooled features or captions to borrow from")
    ids = table.doc_ids[: table.n_images]
    return CaptionPool.build(ids, table.pooled, table.image_captions, resources.encoder(STAND_INS.text))


def borrowed_captioner(pool: CaptionPool, count: int = BORROWED_CAPTIONS) -> Captioner:
    captioner = NeighbourCaptioner(pool, k=count)
    return lambda features: captioner.caption_text(features.pooled, count)


def saved_captioner(folder: Path, saved: dict) -> Captioner | None:
    """The captioner a saved model was trained with, or None for image-only documents."""
    count = saved.get(SAVED_KEY)
    return borrowed_captioner(CaptionPool.load(folder), count) if count else None
