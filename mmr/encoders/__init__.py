"""Encoders behind one interface (``Encoder.encode -> float32 L2-normalised (n, d)``)."""

from mmr.encoders.base import Encoder, ImageEncoder, TextEncoder, l2_normalise
from mmr.encoders.registry import ENCODERS, EncoderSpec, UnknownEncoderError, load_encoder

__all__ = [
    "ENCODERS",
    "Encoder",
    "EncoderSpec",
    "ImageEncoder",
    "TextEncoder",
    "UnknownEncoderError",
    "l2_normalise",
    "load_encoder",
]
