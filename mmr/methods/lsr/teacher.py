"""The frozen dense retriever whose vectors the sparse head reads and whose scores it imitates.

Which one is a setting, not a code path: ``LSRTraining.teacher`` names it, or asks for the "best" trained
dense retriever present (by the dev MRR@10 in its manifest), else the zero-shot verbaliser, which needs no
training. The choice is written into the LSR model's config, so serving never re-chooses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np

from mmr.config import Settings
from mmr.encoders.base import ImageFeatures
from mmr.encoders.registry import STAND_INS
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import DualEncoderModel

log = logging.getLogger(__name__)

BEST_TEACHER = "best"
TEACHER_CANDIDATES = ("marvel", "ciea", "univl-dr", "dense-inbatch")  # trained dense retrievers here
ZERO_SHOT_TEACHER = "zeroshot-verbal"


class ZeroShotTeacher:
    """The zero-shot verbalisation retriever as a dual encoder: the text backbone for texts, the
    softmax-weighted ImageNet class-name embedding for images."""

    needs_grid = False

    def __init__(self, resources: Resources):
        self.text_encoder = resources.encoder(STAND_INS.text)
        self.verbaliser = resources.verbaliser(STAND_INS.text)
        self.dim = self.text_encoder.dim

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_encoder.encode(list(texts), progress="teacher texts" if len(texts) > 256 else False)

    def encode_images(self, features: ImageFeatures) -> np.ndarray:
        return self.verbaliser.embed(features.logits)


def _dev_score(settings: Settings, name: str) -> float | None:
    manifest = settings.model_dir(name) / "manifest.json"
    if not manifest.exists():
        return None
    return float(json.loads(manifest.read_text()).get("dev_mrr_at_10", 0.0))


TEACHER_CHOICES = (BEST_TEACHER, ZERO_SHOT_TEACHER, *TEACHER_CANDIDATES)


def choose_teacher(settings: Settings, requested: str = BEST_TEACHER) -> str:
    """``requested`` if it names a teacher, else ("best") the best trained dense retriever present, else
    the zero-shot one."""
    from mmr.retrievers import RETRIEVERS

    if requested not in TEACHER_CHOICES:
        raise ValueError(f"teacher {requested!r} is not one of {list(TEACHER_CHOICES)}")
    if requested != BEST_TEACHER:
        if requested != ZERO_SHOT_TEACHER and _dev_score(settings, requested) is None:
            raise FileNotFoundError(f"teacher {requested!r} is not trained: run `python -m mmr train {requested}`")
        return requested
    scores = {name: _dev_score(settings, name) for name in TEACHER_CANDIDATES if name in RETRIEVERS}
    present = {name: score for name, score in scores.items() if score is not None}
    if not present:
        log.info("no trained dense retriever found; the zero-shot verbaliser is the teacher")
        return ZERO_SHOT_TEACHER
    best = max(present, key=present.get)
    log.info("teacher %s (dev MRR@10 %.3f; candidates %s)", best, present[best], present)
    return best


def load_teacher(name: str, resources: Resources) -> DualEncoderModel:
    if name == ZERO_SHOT_TEACHER:
        return ZeroShotTeacher(resources)
    from mmr.retrievers import retriever_spec

    return retriever_spec(name).retriever_class().load_model(resources.settings.model_dir(name), resources)


def teacher_tag(name: str, settings: Settings) -> str:
    """Identifies the teacher's weights: retraining the teacher makes the sparse head stale."""
    if name == ZERO_SHOT_TEACHER:
        return f"{name}@{STAND_INS.text}+{STAND_INS.image}"
    from mmr.retrievers.trained import model_fingerprint

    return f"{name}@{model_fingerprint(settings.model_dir(name))}"
