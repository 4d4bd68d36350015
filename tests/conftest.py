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


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """Settings of a tiny index_store built by the real build code (tests/tiny_store.py); nothing trained.
    Tests that train copy it first (``copy_tiny_store``), so each starts from the same untrained store."""
    from tests.tiny_store import build_tiny_store

    return build_tiny_store(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def copy_tiny_store(tiny_store, tmp_path):
    """A private copy of the tiny store (its corpora point at the shared rendered media, read only)."""
    import shutil
    from dataclasses import replace

    target = tmp_path / "index_store"
    shutil.copytree(tiny_store.index_store, target, symlinks=True)
    return replace(tiny_store, index_store=target, data_dir=tmp_path / "data")
