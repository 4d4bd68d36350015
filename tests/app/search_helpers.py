"""Helpers for the Search tab's tests: reading the `/search` outputs, the ratings table, bad upload files."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mmr.config import Settings
from webui.search_tab import MAX_COLUMNS, TOP_K

STAMP = Settings().media_dir / "stamps" / "animals" / "amphibians" / "frog.png"


@dataclass
class SearchView:
    """The `/search` endpoint's outputs as gradio_client returns them: layouts and State are left out,
    so it is the status, one header per column, then (image, text, grade) per card, column by column."""

    status: str
    headers: list[str]
    cards: list[list[str]]  # the card texts of each column, empty cards dropped

    @classmethod
    def parse(cls, outputs: tuple) -> SearchView:
        assert len(outputs) == 1 + MAX_COLUMNS + 3 * MAX_COLUMNS * TOP_K, f"unexpected output count {len(outputs)}"

        def value(update) -> str:
            return (update.get("value") if isinstance(update, dict) else update) or ""

        headers = [value(h) for h in outputs[1 : 1 + MAX_COLUMNS]]
        triples = outputs[1 + MAX_COLUMNS :]
        texts = [value(triples[3 * i + 1]) for i in range(MAX_COLUMNS * TOP_K)]
        cards = [[t for t in texts[c * TOP_K : (c + 1) * TOP_K] if t] for c in range(MAX_COLUMNS)]
        return cls(value(outputs[0]), headers, cards)

    @property
    def shown_columns(self) -> list[str]:
        return [h for h in self.headers if h]


def read_ratings(db_path: Path) -> list[dict]:
    """Every rating row joined with its query, read with plain sqlite3 (not through the app's store)."""
    with sqlite3.connect(db_path) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT q.key AS query_key, q.text AS query_text, q.image_sha, r.collection, r.retriever, r.doc_id,"
            " r.rank, r.score, r.grade, r.rater, r.session_id FROM ratings r JOIN queries q ON q.id = r.query_id"
            " ORDER BY r.id"
        ).fetchall()
    return [dict(row) for row in rows]


def make_bad_files(folder: Path) -> dict[str, Path]:
    """One file per way an upload can be wrong; each must be refused with a clear message."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    truncated = folder / "truncated.png"
    data = STAMP.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    files["corrupt"] = truncated
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    files["zero-byte"] = empty
    not_image = folder / "notes.png"
    not_image.write_text("these are notes, not pixels\n" * 50)
    files["not-an-image"] = not_image
    bomb = folder / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb, optimize=True)  # 400 Mpixel, a few dozen KB on disk
    files["decompression-bomb"] = bomb
    return files


def make_oversized_file(folder: Path, megabytes: int = 11) -> Path:
    path = folder / "huge.png"
    with path.open("wb") as out:
        out.write(STAMP.read_bytes())
        out.write(b"\0" * (megabytes * 2**20))
    return path
