"""Shared fixtures. Expensive ones (real packaged encoder weights) load once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def real_resources(tmp_path_factory):
    """Resources with the real MiniLM and EfficientNet-Lite0 weights, feature cache in a temp folder."""
    from mmr.config import Settings
    from mmr.retrievers import Resources

    store = tmp_path_factory.mktemp("index_store")
    return Resources(Settings(index_store=store, data_dir=tmp_path_factory.mktemp("data")), device="cpu")
