"""The pipeline's bookkeeping: order, one failure reported and contained, a second pipeline refused."""

from __future__ import annotations

import logging

import pytest

from mmr.config import Settings
from mmr.retrievers import RETRIEVERS, TRAINING_ORDER
from mmr.training import pipeline, releases
from mmr.training.common import Manifest
from mmr.training.locks import FileLock, LockHeldError
from mmr.training.status import DONE, FAILED, SKIPPED, pipeline_lock_path, read_status


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")


def test_training_order_puts_every_method_after_what_it_reads():
    trained = {name for name, spec in RETRIEVERS.items() if spec.trainer}
    assert set(TRAINING_ORDER) == trained
    for name in TRAINING_ORDER:
        for dependency in RETRIEVERS[name].after:
            assert TRAINING_ORDER.index(dependency) < TRAINING_ORDER.index(name), (name, dependency)


@pytest.fixture
def fake_training(monkeypatch):
    """train_release replaced by one that publishes an empty model at once, and fails for ``failing``."""
    calls, failing = [], set()

    def fake_release(settings, resources, name, seed=0, options=None):
        calls.append(name)
        logging.getLogger("mmr.methods.fake").info("%s: stage 1 started", name)
        if name in failing:
            logging.getLogger("mmr.methods.fake").error("%s: the dev set is empty", name)
            raise RuntimeError(f"{name} broke")
        folder = releases.new_release_folder(settings, name)
        (folder / "model").mkdir()
        manifest = Manifest(name, "fp", 0.25, seed, 1.0)
        manifest.save(folder / "model")
        releases.publish(settings, name, folder)
        return pipeline.Release(name, manifest, folder, 1.0)

    monkeypatch.setattr(pipeline, "train_release", fake_release)
    monkeypatch.setattr(pipeline, "build_training_corpus", lambda settings: None)
    return calls, failing


def test_a_failure_is_reported_with_its_log_line_and_only_its_dependents_wait(settings, fake_training):
    calls, failing = fake_training
    failing.add("dense-inbatch")
    status = pipeline.run_pipeline(settings)
    assert calls == [name for name in TRAINING_ORDER if name not in ("univl-dr", "lsr")]
    failed = status.methods["dense-inbatch"]
    assert failed.state == FAILED and failed.error == "RuntimeError: dense-inbatch broke"
    assert "the dev set is empty" in (settings.training_dir / "logs" / "dense-inbatch.log").read_text()
    assert failed.log_line.endswith("dense-inbatch: the dev set is empty")  # where it was when it failed
    assert failed.command == "python -m mmr train dense-inbatch"
    for name in ("univl-dr", "lsr"):
        assert status.methods[name].state == SKIPPED and "dense-inbatch" in status.methods[name].error
    for name in ("procrustes", "borrowed-captions", "procrustes-gmlp", "marvel", "ciea"):
        assert status.methods[name].state == DONE and releases.is_trained(settings, name)
    on_disk = read_status(settings)
    assert not on_disk.alive and on_disk.finished is not None
    assert {n: m.state for n, m in on_disk.methods.items()} == {n: m.state for n, m in status.methods.items()}


def test_a_second_run_trains_only_what_is_missing(settings, fake_training):
    calls, failing = fake_training
    failing.add("marvel")
    pipeline.run_pipeline(settings)
    calls.clear()
    failing.clear()
    status = pipeline.run_pipeline(settings)
    assert calls == ["marvel", "ciea"]
    assert all(m.state == DONE for m in status.methods.values())


def test_a_second_pipeline_on_the_same_store_is_refused(settings, fake_training):
    calls, _ = fake_training
    with FileLock(pipeline_lock_path(settings)), pytest.raises(LockHeldError):
        pipeline.run_pipeline(settings)
    assert calls == []


def test_a_method_trained_elsewhere_now_is_skipped_not_trained_twice(settings, monkeypatch):
    monkeypatch.setattr(pipeline, "build_training_corpus", lambda settings: None)
    with pipeline.method_lock(settings, "procrustes"):
        status = pipeline.run_pipeline(settings, ["procrustes"])
    method = status.methods["procrustes"]
    assert method.state == SKIPPED and "another process" in method.error


def test_the_training_data_is_prepared_once_and_shown_while_it_is(settings, fake_training, monkeypatch):
    seen = []

    def build(settings):
        seen.append(read_status(settings).preparing)

    monkeypatch.setattr(pipeline, "build_training_corpus", build)
    status = pipeline.run_pipeline(settings)
    assert len(seen) == 1 and seen[0] is not None and seen[0].state == "training"
    assert status.preparing is None and read_status(settings).preparing is None
