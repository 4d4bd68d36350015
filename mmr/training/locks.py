"""Advisory file locks, so that two processes on one index_store never train the same thing at once.

A lock is an ``flock`` on a file under ``training/``: the kernel drops it when its holder exits, however
it exits, so a killed trainer never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class LockHeldError(RuntimeError):
    """Another process holds the lock."""


class FileLock:
    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def acquire(self, wait: float = 1.0) -> FileLock:
        """Take the lock, trying for ``wait`` seconds (``is_held`` probes take it for an instant), or raise
        ``LockHeldError`` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise LockHeldError(f"{self.path.stem} is held by {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FileLock:
        return self if self._handle is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """Whether some process holds the lock at ``path`` now (probes it without keeping it)."""
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
