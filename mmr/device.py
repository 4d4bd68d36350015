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
