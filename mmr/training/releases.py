"""Releases of a trained method: trained and indexed in a folder of their own, then switched in at once.

``releases/<name>/<stamp>/`` holds a model (``model/``) and its indexes (``indexes/<collection>/``);
``releases/<name>/CURRENT`` names the stamp that is served. A run writes a new stamp folder and,
only once the model and every index are written, replaces CURRENT with one atomic rename. So a reader
(the app loading a method, a second training run reading a teacher) sees the old release or the new one,
never a half-written one, and a run killed midway leaves CURRENT as it was. Its folder is removed by the
next run of the same method, which holds the method's lock (``locks.py``).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from mmr.config import CURRENT_RELEASE, Settings

KEEP_PREVIOUS = 1  # releases kept besides the current one: an app still serving it loaded it in memory


def new_release_folder(settings: Settings, name: str) -> Path:
    now = time.time()  # names sort in time order: removal keeps the newest by name
    stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.localtime(now))}.{int(now % 1 * 1e6):06d}-{os.getpid()}"
    folder = settings.releases_dir / name / stamp
    folder.mkdir(parents=True)
    return folder


def staged(settings: Settings, name: str, folder: Path) -> Settings:
    """Settings under which ``name`` reads and writes its model and indexes in ``folder``."""
    return replace(settings, staging={**settings.staging, name: folder})


def current_stamp(settings: Settings, name: str) -> str | None:
    try:
        return (settings.releases_dir / name / CURRENT_RELEASE).read_text().strip() or None
    except FileNotFoundError:
        return None


def publish(settings: Settings, name: str, folder: Path) -> None:
    """Serve ``folder`` as ``name``'s release from now on (one atomic rename), then tidy old ones."""
    pointer = settings.releases_dir / name / CURRENT_RELEASE
    tmp = pointer.with_name(f"{CURRENT_RELEASE}.{os.getpid()}.tmp")
    tmp.write_text(folder.name + "\n")
    tmp.replace(pointer)
    remove_unpublished(settings, name, keep=KEEP_PREVIOUS)


def remove_unpublished(settings: Settings, name: str, keep: int = KEEP_PREVIOUS) -> list[Path]:
    """Delete ``name``'s release folders but the current one and the ``keep`` newest before it.

    Run only by the holder of the method's lock: any other folder is then a finished predecessor or the
    remains of a run that was killed before it published.
    """
    root = settings.releases_dir / name
    current = current_stamp(settings, name)
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    if current is None:
        doomed = folders  # nothing was ever published: every folder is a killed run's
    else:
        older = [p for p in folders if p.name < current]
        newer = [p for p in folders if p.name > current]  # started after CURRENT and never published
        doomed = older[: max(0, len(older) - keep)] + newer
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def is_trained(settings: Settings, name: str) -> bool:
    """A published release, or a model from before releases existed (``models/<name>``)."""
    return (settings.model_dir(name) / "manifest.json").exists()
