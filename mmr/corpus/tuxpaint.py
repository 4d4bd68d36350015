"""Tux Paint stamps (Debian ``tuxpaint-stamps-default``) as an image corpus.

A stamp is ``<category>/.../<name>.txt`` beside ``<name>.png`` and/or ``<name>.svg``. The first
line of the .txt is the English description ("A flower."), the rest are ``xx.utf8=`` translations.
The description becomes the document's caption; file and folder names stay in metadata only,
because they nearly give the answer away and must not leak into what a retriever reads.

Every image is rendered to one normalised PNG (RGB on white, longest side <= 512) under
``media_dir/stamps/`` so the app and the encoders read a single format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mmr.corpus.images import BuildReport, media_png_path, render_many
from mmr.types import Document

logger = logging.getLogger(__name__)

__all__ = ["BuildReport", "Stamp", "build_stamps_corpus", "find_stamps", "read_description"]

# PNG first: it is the artist's own raster; the SVG-only stamps are rendered.
_IMAGE_SUFFIXES = (".png", ".svg")


@dataclass(frozen=True)
class Stamp:
    rel_stem: str  # relative path without extension, "/"-separated
    text_path: Path
    image_path: Path


def read_description(text_path: Path) -> str:
    """First line of a stamp's .txt with whitespace normalised ('' if the file is empty)."""
    raw = text_path.read_text(encoding="utf-8-sig", errors="replace")
    first = raw.splitlines()[0] if raw.strip() else ""
    return " ".join(first.split())


def find_stamps(stamps_root: Path) -> list[Stamp]:
    """Every .txt that has an image beside it, sorted by relative path."""
    stamps_root = Path(stamps_root)
    stamps = []
    for text_path in sorted(stamps_root.rglob("*.txt")):
        image = next(
            (text_path.with_suffix(s) for s in _IMAGE_SUFFIXES if text_path.with_suffix(s).is_file()),
            None,
        )
        if image is None:
            logger.debug("stamp text without image: %s", text_path)
            continue
        rel_stem = text_path.relative_to(stamps_root).with_suffix("").as_posix()
        stamps.append(Stamp(rel_stem, text_path, image))
    return stamps


def _stamp_document(stamp: Stamp, description: str, png: Path, stamps_root: Path) -> Document:
    folders = stamp.rel_stem.split("/")[:-1]
    return Document(
        id=f"stamp/{stamp.rel_stem}",
        modality="image",
        text=description,
        image_path=str(png),
        metadata={
            "source": "tuxpaint",
            "category": folders[0] if folders else "",
            "subcategory": "/".join(folders[1:]),
            "file": stamp.image_path.relative_to(stamps_root).as_posix(),
        },
    )


def build_stamps_corpus(
    stamps_root: Path, media_dir: Path, workers: int = 2, max_side: int = 512, timeout_s: float = 10.0
) -> tuple[list[Document], BuildReport]:
    """Render every stamp into ``media_dir/stamps`` and return one image document per stamp.

    Stamps without a description or whose image cannot be rendered are skipped and counted in the
    report (``failed_paths`` holds their source files); they never stop the build.
    """
    stamps_root = Path(stamps_root)
    stamps = find_stamps(stamps_root)
    report = BuildReport(total=len(stamps))
    described = []
    for stamp in stamps:
        description = read_description(stamp.text_path)
        if description:
            described.append((stamp, description))
        else:
            report.failed += 1
            report.failed_paths.append(str(stamp.text_path))
            logger.warning("stamp without a description: %s", stamp.text_path)

    pngs = [media_png_path(media_dir, "stamps", stamp.rel_stem) for stamp, _ in described]
    jobs = [(stamp.image_path, png) for (stamp, _), png in zip(described, pngs)]
    # Re-rendered every time: 950 small files take seconds, and a stale PNG would be worse.
    results = render_many(jobs, workers=workers, max_side=max_side, timeout_s=timeout_s, desc="stamps")

    documents = []
    for (stamp, description), png, ok in zip(described, pngs, results):
        if not ok:
            report.failed += 1
            report.failed_paths.append(str(stamp.image_path))
            continue
        documents.append(_stamp_document(stamp, description, png, stamps_root))
    report.rendered = len(documents)
    logger.info("stamps: %d of %d rendered, %d failed", report.rendered, report.total, report.failed)
    return documents, report
