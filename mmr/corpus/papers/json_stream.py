"""Items of one array inside a large JSON document, read a chunk at a time (no streaming JSON parser is a
dependency of this project): the Karpathy split files are one JSON object, 140 MB for MSCOCO."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from mmr.corpus.format import CorpusFormatError

CHUNK_CHARS = 1 << 20
_WHITESPACE = re.compile(r"\s*")


def iter_json_array(path: Path, key: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[tuple[str, dict]]:
    """``("<path>: <key>[i]", item)`` for each object of the array that ``"<key>": [`` opens, in order.

    The array is found by its key, so it must be the first value with that key in the file (a Karpathy
    file's ``images`` is). Memory holds one chunk and the item being decoded, never the whole file."""
    path = Path(path)
    decoder = json.JSONDecoder()
    opening = re.compile(rf'"{re.escape(key)}"\s*:\s*\[')
    with path.open(encoding="utf-8") as handle:
        buffer = ""
        while (match := opening.search(buffer)) is None:
            more = handle.read(chunk_chars)
            if not more:
                raise CorpusFormatError(f"{path}: no {key!r} array")
            buffer = buffer[-len(key) - 16 :] + more  # keep enough of the tail for a key split across chunks
        pos, index, expect_item = match.end(), 0, True
        while True:
            pos = _WHITESPACE.match(buffer, pos).end()
            if pos == len(buffer) or expect_item and buffer[pos] != "]":
                try:
                    item, end = decoder.raw_decode(buffer, pos)
                except json.JSONDecodeError as err:
                    more = handle.read(chunk_chars)
                    if not more:
                        where = f"{path}: {key}[{index}]" if pos < len(buffer) else f"{path}: after {key}[{index - 1}]"
                        raise CorpusFormatError(f"{where}: not JSON or cut short ({err.msg})") from err
                    buffer, pos = buffer[pos:] + more, 0
                    continue
                if not isinstance(item, dict):
                    raise CorpusFormatError(f"{path}: {key}[{index}]: expected an object, got {type(item).__name__}")
                yield f"{path}: {key}[{index}]", item
                index, pos, expect_item = index + 1, end, False
            elif buffer[pos] == "]":
                return
            elif buffer[pos] == ",":
                pos, expect_item = pos + 1, True
            else:
                raise CorpusFormatError(f"{path}: after {key}[{index - 1}]: expected ',' or ']', got {buffer[pos]!r}")
