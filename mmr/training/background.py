"""The app's trainer: `mmr train-all` in a child process, and a thread that brings its releases in.

The app answers at once with what is built; the child trains the missing methods one by one (niced, so
searches keep the upper hand on a small machine) and publishes each as it is done; ``ReleaseWatcher``
sees the new release and loads it into the running ``SearchService``. The pipeline lock makes a second
app on the same index_store watch instead of training again.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

from mmr.config import REPO_ROOT, Settings
from mmr.training.locks import is_held
from mmr.training.pipeline import untrained
from mmr.training.status import pipeline_lock_path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    os.nice(10)
    try:  # Linux: the trainer gets SIGTERM when the app exits, however the app exits
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def start_background_training(settings: Settings) -> subprocess.Popen | None:
    """Start training what has no model yet, unless nothing is missing or another process trains already."""
    missing = untrained(settings)
    if not missing:
        return None
    if is_held(pipeline_lock_path(settings)):
        log.info("another process is training on %s; this app watches its releases", settings.index_store)
        return None
    settings.training_dir.mkdir(parents=True, exist_ok=True)
    log_file = (settings.training_dir / "pipeline.log").open("w")
    env = {
        **os.environ,
        "MMR_INDEX_STORE": str(settings.index_store),
        "HF_HUB_OFFLINE": "1",
        "TQDM_MININTERVAL": "5",  # the log gets a line every few seconds, not hundreds
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mmr", "train-all"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    log_file.close()
    log.info("training %s in the background (pid %d, log %s)", ", ".join(missing), process.pid, log_file.name)
    return process


class ReleaseWatcher(threading.Thread):
    """Calls ``service.refresh()`` every ``interval`` seconds, for as long as the app runs."""

    def __init__(self, service, interval: float = 3.0):
        super().__init__(name="release-watcher", daemon=True)
        self.service, self.interval = service, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.service.refresh()
            except Exception:  # a bad release must not stop the watching
                log.exception("refreshing the retrievers failed")

    def stop(self) -> None:
        self._stop_event.set()
