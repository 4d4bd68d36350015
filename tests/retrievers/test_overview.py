"""The retriever overview the app shows: the registry's entry joined with the served model's manifest."""

from __future__ import annotations

import pytest

from mmr.config import Settings
from mmr.retrievers import RETRIEVERS
from mmr.retrievers.overview import overview
from mmr.training.common import Manifest
from webui.about import retrievers_markdown


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")
    Manifest("marvel", "abc123", 0.214, 0, 236.4, date="2026-11-22T10:00:00+0000").save(settings.models_dir / "marvel")
    pool = settings.models_dir / "borrowed-captions"
    Manifest("borrowed-captions", "abc123", 0.289, 0, 10.9, date="2026-11-23T08:07:57+0000").save(pool)
    (settings.models_dir / "ciea").mkdir(parents=True)
    (settings.models_dir / "ciea" / "manifest.json").write_text("{not json")  # half-written: counts as untrained
    return settings


def test_overview_joins_the_registry_with_each_served_models_manifest(settings):
    entries = {entry.name: entry for entry in overview(settings, ["ciea", "bm25", "marvel", "lsr"])}
    assert [e.name for e in overview(settings, ["ciea", "bm25", "marvel"])] == ["bm25", "marvel", "ciea"]
    assert entries["bm25"].trained is False and entries["bm25"].manifest is None
    assert entries["marvel"].manifest.dev_mrr_at_10 == pytest.approx(0.214)
    assert entries["marvel"].family == RETRIEVERS["marvel"].family
    assert entries["ciea"].manifest is None and entries["lsr"].manifest is None
    with pytest.raises(KeyError, match="colbert"):
        overview(settings, ["bm25", "colbert"])


def test_overview_markdown_says_how_each_model_was_chosen_or_how_to_train_it(settings):
    names = ("bm25", "marvel", "ciea", "borrowed-captions")
    text = retrievers_markdown(overview(settings, list(names)))
    lines = text.splitlines()
    row = {name: next(line for line in lines if f"(`{name}`)" in line) for name in names}
    assert row["bm25"].endswith("| no training |")
    assert "dev MRR@10 0.214, trained 2026-11-22 in 236 s" in row["marvel"]
    # a baseline whose pool comes from the training data was built, not trained
    assert "dev MRR@10 0.289, built 2026-11-23 in 11 s" in row["borrowed-captions"]
    assert "not trained: `python -m mmr train ciea`" in row["ciea"]
    # MARVEL's <im_start> markers would otherwise be read as HTML tags and vanish from the page
    assert "&lt;im_start&gt;" in row["marvel"] and "<im_start>" not in text
    assert all(line.count("|") == 5 for line in lines if line.startswith("| "))
    assert retrievers_markdown([]).startswith("No retriever is loaded")
    # a retriever this machine lacks a checkpoint for is listed apart, with what it needs
    waiting = retrievers_markdown(overview(settings, ["bm25"]), {"clip-zeroshot": "set MMR_CLIP_PATH"})
    assert waiting.splitlines()[-1] == "- CLIP zero-shot (`clip-zeroshot`): set MMR_CLIP_PATH"
    assert "(`clip-zeroshot`)" not in waiting.split("Not configured")[0]


def test_mmr_info_lists_every_trainable_model_from_its_manifest(settings):
    from mmr.cli import trained_models_table

    rows = {line.split(" | ")[0].strip("| "): line for line in trained_models_table(settings).splitlines()[3:]}
    assert set(rows) == {name for name, spec in RETRIEVERS.items() if spec.trainer}
    assert "| 0.214 | 236 | abc123 | 0 | 2026-11-22T10:00:00+0000 |" in rows["marvel"]
    assert "not trained (`python -m mmr train ciea`)" in rows["ciea"]
