"""Releases, locks and the status file: what keeps a half-trained method out and two trainers apart."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mmr.config import Settings
from mmr.training import releases
from mmr.training.locks import FileLock, LockHeldError, is_held
from mmr.training.status import (
    INTERRUPTED,
    RUNNING,
    MethodStatus,
    PipelineStatus,
    pipeline_lock_path,
    read_status,
    write_status,
)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(index_store=tmp_path / "store", data_dir=tmp_path / "data")


def _write_model(folder, tag: str) -> None:
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "manifest.json").write_text(tag)


def test_a_release_is_served_only_once_published(settings):
    assert settings.model_dir("marvel") == settings.models_dir / "marvel"  # nothing yet: the old layout
    folder = releases.new_release_folder(settings, "marvel")
    _write_model(folder, "first")
    assert not releases.is_trained(settings, "marvel"), "an unpublished release was served"
    assert releases.staged(settings, "marvel", folder).model_dir("marvel") == folder / "model"
    releases.publish(settings, "marvel", folder)
    assert settings.model_dir("marvel") == folder / "model"
    assert settings.index_dir("marvel", "stamps") == folder / "indexes" / "stamps"
    assert releases.is_trained(settings, "marvel")


def test_staging_one_method_leaves_the_others_on_their_published_release(settings):
    teacher = releases.new_release_folder(settings, "dense-inbatch")
    _write_model(teacher, "teacher")
    releases.publish(settings, "dense-inbatch", teacher)
    student = releases.new_release_folder(settings, "lsr")
    view = releases.staged(settings, "lsr", student)
    assert view.model_dir("dense-inbatch") == teacher / "model"
    assert view.model_dir("lsr") == student / "model"
    assert settings.model_dir("lsr") == settings.models_dir / "lsr"


def test_a_retrain_switches_at_once_and_tidies_old_and_killed_runs(settings):
    stamps = []
    for tag in ("one", "two", "three"):
        folder = releases.new_release_folder(settings, "ciea")
        _write_model(folder, tag)
        releases.publish(settings, "ciea", folder)
        stamps.append(folder.name)
        assert (settings.model_dir("ciea") / "manifest.json").read_text() == tag
    killed = releases.new_release_folder(settings, "ciea")  # a run that died before publishing
    _write_model(killed, "half")
    left = {p.name for p in (settings.releases_dir / "ciea").iterdir() if p.is_dir()}
    assert left == {stamps[1], stamps[2], killed.name}, "the oldest release outlived two newer ones"
    removed = releases.remove_unpublished(settings, "ciea")
    assert [p.name for p in removed] == [killed.name]
    assert (settings.model_dir("ciea") / "manifest.json").read_text() == "three"


def test_a_run_killed_before_any_release_leaves_nothing_served(settings):
    killed = releases.new_release_folder(settings, "lsr")
    _write_model(killed, "half")
    assert releases.current_stamp(settings, "lsr") is None
    assert not releases.is_trained(settings, "lsr")
    assert releases.remove_unpublished(settings, "lsr") == [killed]


def test_a_lock_keeps_a_second_holder_out_and_names_the_first(tmp_path):
    path = tmp_path / "marvel.lock"
    with FileLock(path).acquire(wait=0):
        assert is_held(path)
        with pytest.raises(LockHeldError, match="marvel is held by pid"):
            FileLock(path).acquire(wait=0.2)
    assert not is_held(path)
    with FileLock(path):  # free again
        pass


def test_a_killed_holder_frees_its_lock(tmp_path):
    path = tmp_path / "pipeline.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, sys, time; from mmr.training.locks import FileLock; "
            "lock = FileLock(pathlib.Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert is_held(path)
    holder.kill()
    holder.wait()
    deadline = time.monotonic() + 5
    while is_held(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_held(path), "a killed trainer left its lock behind"


def test_status_of_a_dead_trainer_says_interrupted(settings):
    status = PipelineStatus(methods={"marvel": MethodStatus(state=RUNNING, stage="stage 1-visual", done=3, total=9)})
    with FileLock(pipeline_lock_path(settings)):
        write_status(settings, status)
        live = read_status(settings)
        assert live.alive and live.methods["marvel"].state == RUNNING
        assert live.methods["marvel"].fraction == pytest.approx(1 / 3)
    dead = read_status(settings)
    assert not dead.alive
    assert dead.methods["marvel"].state == INTERRUPTED
    assert "stopped" in dead.methods["marvel"].error
