"""Every bound on what a visitor can send, in one place, and the checks that enforce them.

The app is meant to be public, so each value a request carries is checked as the type it is (an
integer rank, a finite score, a grade in 0-3, text that is text) and against a size. The store checks
lengths again at its door, so a caller that skips the library cannot write more than these allow.
A refusal is a ``LimitError`` whose message says what was wrong and what is allowed.
"""

from __future__ import annotations

import math
import re

# text
MAX_QUERY_CHARS = 2000  # a search truncates longer text (and says so); stored query text is at most this
MAX_QUERY_KEY_CHARS = MAX_QUERY_CHARS + 80  # "text:" + the text, or "image:" + a sha256
MAX_RATER_CHARS = 40
MAX_SESSION_NAME_CHARS = 128
MAX_DOC_ID_CHARS = 512
MAX_RETRIEVER_CHARS = 64
MAX_IMPORT_LABEL_CHARS = 128

# searches and sessions
MAX_RETRIEVERS_PER_SEARCH = 6
MAX_SEARCH_K = 100
MAX_RANK = 1000
MAX_QUERIES_PER_CALL = 200
MAX_QUERIES_PER_SESSION = 2000
MAX_SESSIONS_PER_RATER = 100
MAX_IMPORT_JUDGMENTS = 200_000

# images: bytes on the wire, pixels once decoded, decodes at once, and inflated PNG text
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000  # 4000 x 4000: an RGB copy is 48 MB, and at most MAX_CONCURRENT_DECODES run
MAX_CONCURRENT_DECODES = 2
MAX_IMAGE_TEXT_CHUNK = 64 * 1024
MAX_IMAGE_TEXT_TOTAL = 256 * 1024

RATER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")


class LimitError(ValueError):
    """A value outside what the app accepts; the message is meant for the caller."""


def checked_text(value: object, what: str, max_chars: int, *, required: bool = True) -> str:
    """``value`` as stripped text of at most ``max_chars`` characters, and valid Unicode (no lone
    surrogates, no NUL): SQLite, the tokenizers and the exports all need text that encodes as UTF-8."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise LimitError(f"{what} must be text, got {type(value).__name__}")
    text = value.strip()
    if required and not text:
        raise LimitError(f"{what} is empty")
    if len(text) > max_chars:
        raise LimitError(f"{what} has {len(text):,} characters; the limit is {max_chars:,}")
    if "\x00" in text:
        raise LimitError(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise LimitError(f"{what} contains characters that are not valid Unicode text (a lone surrogate)") from err
    return text


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):  # True is an int to Python, not a rank or a grade to anyone
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,12}\s*", value):
        return int(value)
    return None


def checked_int(value: object, what: str, low: int, high: int) -> int:
    """An integer in [low, high]: an int, a float with no fraction, or the digits of one; never a bool."""
    number = _whole_number(value)
    if number is None:
        raise LimitError(f"{what} must be a whole number from {low} to {high}, got {str(value)[:40]!r}")
    if not low <= number <= high:
        raise LimitError(f"{what} must be from {low} to {high}, got {number}")
    return number


def checked_float(value: object, what: str) -> float:
    """A finite number (scores are stored as given: NaN and infinities have no order to keep)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(str(value)) if isinstance(value, str) else None
        except ValueError:
            value = None
    if value is None or not math.isfinite(float(value)):
        raise LimitError(f"{what} must be a finite number")
    return float(value)


def checked_rater_name(value: object) -> str:
    """A name a person picks: letters, digits, spaces, dots, dashes and underscores, at most
    MAX_RATER_CHARS. No colon, so it can never pass for a signed-in account ("hf:...") or an import."""
    name = checked_text(value, "the rater name", MAX_RATER_CHARS)
    if not RATER_NAME.fullmatch(name):
        raise LimitError(
            "a rater name uses letters, digits, spaces, dots, dashes and underscores, and starts with a letter or digit"
        )
    return name


def distinct_retrievers(names: object) -> list[str]:
    """The retrievers of one search: a list of names, each once, at most MAX_RETRIEVERS_PER_SEARCH."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple):
        raise LimitError("retrievers must be a list of names")
    chosen = list(dict.fromkeys(checked_text(n, "a retriever name", MAX_RETRIEVER_CHARS) for n in names))
    if len(chosen) > MAX_RETRIEVERS_PER_SEARCH:
        raise LimitError(f"pick at most {MAX_RETRIEVERS_PER_SEARCH} retrievers; {len(chosen)} were given")
    return chosen
