"""The one place where the compute device is chosen; ``None`` everywhere else means "ask here"."""

from __future__ import annotations

import functools


@functools.cache
def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(device: str | None) -> str:
    return default_device() if device is None else device


def serving_device(resources) -> str:
    """Where a loaded model serves: the device its ``Resources`` name, else the one found here (also when a test
    loads a model without any)."""
    return resolve_device(getattr(resources, "device", None))
