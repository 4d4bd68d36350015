"""What each retriever is and what its served model is: the registry's entry joined with its manifest.

The app shows this next to the retriever picker, so that a researcher comparing result lists knows which
method each column re-implements and how its model was chosen, without leaving the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mmr.config import Settings
from mmr.retrievers import RETRIEVERS
from mmr.training.common import Manifest


@dataclass(frozen=True)
class RetrieverOverview:
    name: str
    label: str
    family: str  # "baseline" or the published method it re-implements
    description: str
    trained: bool  # whether the method learns (baselines do not)
    manifest: Manifest | None  # the served model's; None for a baseline, or a model not trained yet


def overview(settings: Settings, names: Iterable[str]) -> list[RetrieverOverview]:
    """One entry per name, in the registry's order; unknown names are an error, not skipped."""
    wanted = set(names)
    unknown = wanted - set(RETRIEVERS)
    if unknown:
        raise KeyError(f"not registered retrievers: {sorted(unknown)}")
    return [
        RetrieverOverview(
            name,
            spec.label,
            spec.family,
            spec.description,
            spec.trained,
            _manifest(settings, name) if spec.trainer else None,
        )
        for name, spec in RETRIEVERS.items()
        if name in wanted
    ]


def _manifest(settings: Settings, name: str) -> Manifest | None:
    try:
        return Manifest.load(settings.model_dir(name))
    except (FileNotFoundError, ValueError, TypeError):  # not trained, or a manifest this code cannot read
        return None
