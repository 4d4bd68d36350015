"""A trainer killed mid-run on the tiny store: nothing half-written is served, and a rerun starts clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mmr.config import REPO_ROOT
from mmr.service import SearchService
from mmr.training import releases
from mmr.training.pipeline import run_pipeline
from mmr.training.status import DONE, INTERRUPTED, read_status

pytestmark = pytest.mark.slow


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_killed_trainer_leaves_nothing_served_and_a_rerun_replaces_its_remains(copy_tiny_store):
    settings = copy_tiny_store
    env = {**os.environ, "MMR_INDEX_STORE": str(settings.index_store), "HF_HUB_OFFLINE": "1"}
    trainer = subprocess.Popen(
        [sys.executable, "-m", "mmr", "train-all", "-r", "procrustes"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    releases_of = settings.releases_dir / "procrustes"
    try:
        _wait_for(lambda: releases_of.is_dir() and any(releases_of.iterdir()), 240, "a release folder")
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
    finally:
        if trainer.poll() is None:
            trainer.kill()
    (remains,) = [p for p in releases_of.iterdir() if p.is_dir()]
    assert not releases.is_trained(settings, "procrustes"), "a release was served before it was complete"
    status = read_status(settings)
    assert status.methods["procrustes"].state == INTERRUPTED
    service = SearchService.load(settings, ["procrustes"], ["stamps"])
    assert not service.retrievers and "mmr train procrustes" in service.load_errors[("procrustes", "stamps")]

    again = run_pipeline(settings, ["procrustes"])
    assert again.methods["procrustes"].state == DONE
    assert not remains.exists(), "the killed run's folder outlived the rerun"
    served = settings.release_folder("procrustes")
    assert served is not None and (served / "indexes" / "stamps" / "params.json").exists()
    service.refresh()
    assert ("procrustes", "stamps") in service.retrievers
