"""Train methods into releases, one after another, and say how it goes.

``train_release`` is the one way a model is trained for serving (`mmr train NAME`, `mmr train-all` and the
app's background trainer all use it): under the method's lock, into a new release folder, indexes
included, then published at once (releases.py). ``run_pipeline`` trains every method that has no model
yet, in ``TRAINING_ORDER``, under the pipeline lock, writing the status file the app shows.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmr.build import build_indexes, build_training_corpus
from mmr.config import Settings
from mmr.progress import listening
from mmr.retrievers import RETRIEVERS, TRAINING_ORDER, Resources, retriever_spec, train_function
from mmr.training.common import Manifest
from mmr.training.locks import FileLock, LockHeldError
from mmr.training.releases import is_trained, new_release_folder, publish, remove_unpublished, staged
from mmr.training.status import (
    DONE,
    FAILED,
    RUNNING,
    SKIPPED,
    MethodStatus,
    PipelineStatus,
    pipeline_lock_path,
    write_status,
)

log = logging.getLogger(__name__)

STATUS_EVERY = 1.0  # seconds between status writes while a bar moves
TIMESTAMPED = re.compile(r"^\d\d:\d\d:\d\d ")  # a line of the method's log (not of a traceback)


def train_command(name: str) -> str:
    return f"python -m mmr train {name}"


def method_lock(settings: Settings, name: str) -> FileLock:
    return FileLock(settings.training_dir / f"{name}.lock")


@dataclass
class Release:
    name: str
    manifest: Manifest
    folder: Path
    seconds: float


def train_release(
    settings: Settings, resources: Resources, name: str, seed: int = 0, options: dict | None = None
) -> Release:
    """Train ``name`` and build its indexes in a new release folder, then serve it.

    Raises ``LockHeldError`` when another process trains ``name`` now. A failure leaves the served
    release as it was; the unpublished folder is removed by the next run.
    """
    spec = retriever_spec(name)
    if not spec.trainer:
        raise ValueError(f"{name!r} has nothing to train")
    start = time.monotonic()
    with method_lock(settings, name).acquire(wait=0.0):
        remove_unpublished(settings, name)  # what a killed run of this method left
        folder = new_release_folder(settings, name)
        release_settings = staged(settings, name, folder)
        release_resources = resources.with_settings(release_settings)
        manifest = train_function(spec)(release_settings, release_resources, seed, **(options or {}))
        build_indexes(release_settings, release_resources, [name], force=True, include_trained=True)
        publish(settings, name, folder)
    seconds = time.monotonic() - start
    log.info("%s: published %s (dev MRR@10 %.3f) in %.0f s", name, folder.name, manifest.dev_mrr_at_10, seconds)
    return Release(name, manifest, folder, seconds)


def untrained(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Methods in training order that have no served model yet (of ``names``, or all)."""
    wanted = names or list(TRAINING_ORDER)
    return [name for name in TRAINING_ORDER if name in wanted and not is_trained(settings, name)]


class _StatusWriter:
    """Keeps the status file current: the method's stage and fraction from its progress bars."""

    def __init__(self, settings: Settings, status: PipelineStatus):
        self.settings, self.status = settings, status
        self.current: MethodStatus | None = None
        self._last_write = 0.0

    def write(self) -> None:
        write_status(self.settings, self.status)
        self._last_write = time.monotonic()

    def progress(self, label: str, done: float, total: float | None) -> None:
        if self.current is None:
            return
        self.current.stage, self.current.done, self.current.total = label, done, total
        if time.monotonic() - self._last_write >= STATUS_EVERY or (total and done >= total):
            self.write()


def run_pipeline(
    settings: Settings,
    names: list[str] | None = None,
    force: bool = False,
    seed: int = 0,
    on_release: Callable[[Release], None] | None = None,
) -> PipelineStatus:
    """Train the methods in ``names`` (default: every trained method) that have no model, or all of them
    with ``force``, in training order; one failure does not stop the others, only those that read it.

    Raises ``LockHeldError`` if another pipeline runs on this index_store.
    """
    order = [name for name in TRAINING_ORDER if name in (names or TRAINING_ORDER)]
    todo = order if force else untrained(settings, order)
    with FileLock(pipeline_lock_path(settings)).acquire():
        status = PipelineStatus(methods={name: MethodStatus(command=train_command(name)) for name in todo})
        writer = _StatusWriter(settings, status)
        writer.write()
        resources = Resources(settings)
        with listening(writer.progress):
            if todo:  # once, before the first method, instead of inside it
                writer.current = status.preparing = MethodStatus(state=RUNNING, started=time.time())
                writer.write()
                build_training_corpus(settings)
                writer.current = status.preparing = None
            for name in todo:
                method = status.methods[name]
                blocked = [dep for dep in RETRIEVERS[name].after if _failed(status, dep)]
                if blocked:
                    method.state, method.error = SKIPPED, f"needs {', '.join(blocked)}, which failed"
                    writer.write()
                    continue
                writer.current = method
                _train_one(settings, resources, name, method, writer, seed, on_release)
                writer.current = None
        status.finished = time.time()
        writer.write()
    return status


def _failed(status: PipelineStatus, name: str) -> bool:
    method = status.methods.get(name)
    return method is not None and method.state in (FAILED, SKIPPED)


def _train_one(settings, resources, name, method: MethodStatus, writer: _StatusWriter, seed, on_release) -> None:
    log_path = settings.training_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    package_log = logging.getLogger("mmr")
    package_log.addHandler(handler)
    method.state, method.started, method.log = RUNNING, time.time(), str(log_path)
    writer.write()
    try:
        release = train_release(settings, resources, name, seed)
    except LockHeldError as err:
        method.state, method.error = SKIPPED, f"being trained by another process ({err})"
    except Exception as err:  # a method's failure is reported and the others go on
        log.error("%s failed:\n%s", name, traceback.format_exc())
        method.state, method.error = FAILED, f"{type(err).__name__}: {err}"
        method.log_line = _last_line(log_path)
    else:
        method.state, method.dev_mrr_at_10 = DONE, release.manifest.dev_mrr_at_10
        if on_release is not None:
            on_release(release)
    finally:
        package_log.removeHandler(handler)
        handler.close()
        method.finished = time.time()
        method.seconds = method.finished - method.started
        writer.write()


def _last_line(path: Path) -> str:
    """The method's last log line before it failed: where it was (the error itself is in ``error``)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    logged = [line for line in lines if TIMESTAMPED.match(line) and not line.rstrip().endswith(" failed:")]
    return logged[-1] if logged else ""
