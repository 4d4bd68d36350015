"""What the UI needs, loaded once at start and passed to ``build_demo``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mmr.config import Settings
from mmr.retrievers import RETRIEVERS
from mmr.retrievers.overview import RetrieverOverview, overview
from mmr.service import SearchService
from mmr.store import RatingStore


@dataclass
class AppResources:
    settings: Settings
    service: SearchService
    store: RatingStore

    @cached_property
    def identity(self):
        """Who a request grades as (webui.identity: imports gradio, so loaded when the UI is built)."""
        from webui.identity import Identity

        return Identity(self.store.raters, self.settings.sign_in)

    def retriever_choices(self, collection: str) -> list[tuple[str, str]]:
        return [(RETRIEVERS[name].label, name) for name in RETRIEVERS if name in self.service.available(collection)]

    def retriever_overview(self) -> list[RetrieverOverview]:
        """Every retriever loaded for some collection: what it is and what its served model is."""
        loaded = {name for collection in self.service.collections for name in self.service.available(collection)}
        return overview(self.settings, loaded)


def load_resources(settings: Settings | None = None) -> AppResources:
    settings = settings or Settings()
    service = SearchService.load(settings)
    return AppResources(settings, service, RatingStore(settings.db_path))
