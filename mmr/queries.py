"""Turning what a user typed or uploaded into a ``Query``, with messages meant for that user.

Lives in the library (not the UI) so that the API, the CLI and the tests share one set of rules.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from mmr.corpus.images import ImageInputError, open_uploaded_image
from mmr.limits import (
    MAX_CONCURRENT_DECODES,
    MAX_QUERY_CHARS,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    LimitError,
    checked_text,
)
from mmr.store.uploads import save_uploaded_image
from mmr.types import Query

# Decoding is where an upload costs memory (pixels x channels, and a copy or two): a few at a time, whatever
# the number of requests the server takes at once.
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)


class QueryInputError(ValueError):
    """Input the app cannot search with; the message says what to do instead."""


@dataclass(frozen=True)
class PreparedQuery:
    query: Query
    image_path: str | None  # where the uploaded image was kept
    notice: str | None  # something the user should know (e.g. the text was shortened)


def prepare_query(text: str | None, image_file: str | Path | None, uploads_dir: Path) -> PreparedQuery:
    if text is not None and not isinstance(text, str):
        raise QueryInputError("The query must be text.")
    text, notice = (text or "").strip(), None
    if len(text) > MAX_QUERY_CHARS:
        notice = f"The query had {len(text):,} characters; only the first {MAX_QUERY_CHARS:,} were searched."
        text = text[:MAX_QUERY_CHARS]
    try:
        text = checked_text(text, "The query", MAX_QUERY_CHARS, required=False)
    except LimitError as err:
        raise QueryInputError(f"{err}. Please type it again.") from err
    if image_file:
        path = Path(image_file)
        try:
            size = path.stat().st_size
        except OSError as err:
            raise QueryInputError(
                f"The uploaded file could not be read ({err.strerror}). Please upload it again."
            ) from err
        if size > MAX_UPLOAD_BYTES:
            raise QueryInputError(
                f"The image is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
                "Please upload a smaller image."
            )
        try:
            with _DECODES:
                image = open_uploaded_image(path.read_bytes(), MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS)
        except ImageInputError as err:
            raise QueryInputError(str(err)) from err
        sha, kept = save_uploaded_image(image, uploads_dir)
        return PreparedQuery(Query(text=text or None, image=image, image_sha=sha), str(kept), notice)
    if not text:
        raise QueryInputError("Type a query or add an image to search.")
    return PreparedQuery(Query(text=text), None, notice)
