"""A corpus most of whose images failed to render is never written (mmr/build.py)."""

from pathlib import Path

import pytest

from mmr.build import RenderFailureError, build_corpora, build_training_corpus
from mmr.config import Settings, SourcePaths
from mmr.corpus.images import BuildReport
from tests.corpus.test_tuxpaint import transparent_png


def stamps(root: Path, good: int, broken: int) -> Path:
    for i in range(good + broken):
        (root / f"s{i}.txt").write_text(f"A thing number {i}.\n", "utf-8")
        if i < good:
            transparent_png(root / f"s{i}.png")
        else:
            (root / f"s{i}.png").write_bytes(b"not a png at all")
    return root


def settings_for(tmp_path: Path, stamps_root: Path) -> Settings:
    sources = SourcePaths(tuxpaint_stamps=stamps_root, openclipart_svg=tmp_path, wordnet_dict=tmp_path / "no-wordnet")
    return Settings(index_store=tmp_path / "store", sources=sources)


def test_stamps_corpus_is_not_written_when_most_images_fail(tmp_path):
    settings = settings_for(tmp_path, stamps(tmp_path, good=1, broken=3))
    with pytest.raises(RenderFailureError, match="3 of 4 stamps images failed to render"):
        build_corpora(settings)
    assert not (settings.corpora_dir / "stamps.jsonl").exists()


def test_a_few_failures_still_build_the_corpus(tmp_path):
    settings = settings_for(tmp_path, stamps(tmp_path, good=4, broken=1))
    # Past the stamps corpus the build needs WordNet, which this folder lacks: the stamps are written first.
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        build_corpora(settings)
    assert len((settings.corpora_dir / "stamps.jsonl").read_text("utf-8").splitlines()) == 4


def test_training_corpus_is_not_written_when_most_clips_fail(tmp_path, monkeypatch):
    settings = settings_for(tmp_path, tmp_path)
    report = BuildReport(total=10, rendered=1, failed=9, failed_paths=["a.svg", "b.svg"])
    monkeypatch.setattr("mmr.corpus.openclipart.build_openclipart_corpus", lambda *args, **kwargs: ([], report))
    with pytest.raises(RenderFailureError, match="so the openclipart corpus was not written"):
        build_training_corpus(settings)
    assert not (settings.corpora_dir / "openclipart.jsonl").exists()
