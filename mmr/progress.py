"""Progress bars that someone besides the terminal can watch.

Every long loop of the library (rendering, encoding, training epochs) runs under ``ProgressBar``, a tqdm
bar that also tells the listener installed with ``listening`` what it is doing and how far it got. The
background trainer installs one that writes the training status file the app reads, so the app shows the
same stage and fraction a terminal would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

# (label, done, total or None): called from the thread that advances the bar
Listener = Callable[[str, float, float | None], None]

_listener: Listener | None = None
_lock = threading.Lock()


class ProgressBar(tqdm):
    """A tqdm bar whose updates also reach the installed listener (tqdm calls ``update`` at least every
    ``mininterval`` while iterating, so overriding it covers both iterables and manual updates)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tell()

    def update(self, n: float | None = 1) -> bool | None:
        displayed = super().update(n)
        self._tell()
        return displayed

    def _tell(self) -> None:
        listener = _listener
        if listener is not None:
            listener(str(self.desc or ""), float(self.n), float(self.total) if self.total else None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every bar's progress to ``listener`` while the block runs (one listener at a time)."""
    global _listener
    with _lock:
        if _listener is not None:
            raise RuntimeError("a progress listener is already installed")
        _listener = listener
    try:
        yield
    finally:
        with _lock:
            _listener = None
