"""Openclipart SVGs (Debian ``openclipart-svg``) as captioned images: the training pairs.

The caption is the ``<dc:title>`` of the ``<cc:Work>`` metadata block (``dc:title`` also names the
publisher and creator agents further down, so the first title *inside* the Work is taken), and the
``<rdf:li>`` keywords under ``<dc:subject>`` go to metadata.

What the package holds (measured on the Debian openclipart-svg package, 2 CPU cores):
    8,121 ``*.svg`` paths; 663 are symlinks to other files of the tree (skipped: same image), leaving
    7,458 files, every one with a ``<cc:Work>`` block within its first 20 kB.
    Most frequent raw titles: "gramastar" 1,375 files (generated stars), "Part of the Flat Icon
    Collection (<date>)" 552+259+44+29, "Lemon SVG theme" 416, "card" 226 (every playing card),
    "Etiquette Icons" 207, "AIGA_Symbol_Signs" 122, "SVG Gradient Collection by Alan Horkan" 119,
    "Various Cliparts" 115, "" 62, "SVG Road Signs" 52, "Clipart by Nicu Buculei - jigsaw_red_10" 48.
    Filter result: 2,848 kept, 4,610 rejected (first matching reason): collection words 2,059,
    title on >= 20 files 2,016, single token not an English word ("Sallite", "Tasto", "Cavallo")
    331, credited series label on >= 4 files 73, file name or ID ("clock12", "Tigre01") 69, empty 62.
    FIELD_NOTES estimated ~5,000 usable; most of the gap is whole sets whose shared title says
    nothing about the single image (icons themes, stars, cards, gradients).
    Rendering the 2,848 took 112 s with 2 workers; 26 fail (0.9%): 21 cairosvg errors (sizes in
    percent, no size at all), 5 render blank. Nothing hit the 10 s time limit.
A title shared by many files labels a set, not an image ("card" is every playing card), so
frequency is the main signal; the word list from WordNet's index files catches single-token
usernames and non-English words ("Sallite", "Tasto") too rare for the frequency rule.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mmr.config import SourcePaths
from mmr.corpus.images import BuildReport, media_png_path, render_many
from mmr.corpus.wordnet import read_lemma_vocabulary
from mmr.types import Document

logger = logging.getLogger(__name__)

__all__ = ["BuildReport", "Clip", "build_openclipart_corpus", "clean_title", "read_clip_metadata"]

HEAD_BYTES = 65_536
# A title on this many files or more names the set they came in, not what one of them shows.
MAX_FILES_PER_TITLE = 20
# "Clipart by <artist> - <label>" titles were copied across a series: "pear" is on the apple, the
# banana and the lemon, "contour chipmunk" on the bat and the baboon. Shared that widely, reject.
MAX_FILES_PER_CREDITED_TITLE = 4
MAX_KEYWORDS = 12

_WORK = re.compile(rb"<cc:Work\b.*?</cc:Work>", re.S)
_TITLE = re.compile(rb"<dc:title(?:\s[^>/]*)?>(.*?)</dc:title>", re.S)
_SUBJECT = re.compile(rb"<dc:subject(?:\s[^>/]*)?>(.*?)</dc:subject>", re.S)
_LI = re.compile(rb"<rdf:li(?:\s[^>/]*)?>(.*?)</rdf:li>", re.S)
_TAG = re.compile(r"<[^>]*>")
_CREDIT_PREFIX = re.compile(r"^clip ?art by [^-]{1,40}-\s*", re.I)
_COLLECTION_WORDS = re.compile(
    r"\b(collection|theme|icon ?set|icons|clip ?arts?|svg|submission|sibmission|symbol signs)\b",
    re.I,
)
_MIXED_ALNUM = re.compile(r"^(?=.*[a-z])(?=.*\d)[a-z\d]+$", re.I)
_TRAILING_NUMBER = re.compile(r"(\s+\d+)+$")
_GENERIC_KEYWORDS = {
    "",
    "unsorted",
    "clip art",
    "clipart",
    "image",
    "media",
    "svg",
    "png",
    "public domain",
    "externalsource",
    "openclipart",
}


@dataclass(frozen=True)
class Clip:
    rel_stem: str
    path: Path
    raw_title: str
    keywords: tuple[str, ...]


def _text(fragment: bytes) -> str:
    text = fragment.decode("utf-8", errors="replace").replace("<![CDATA[", "").replace("]]>", "")
    # Some titles were escaped twice ("d&amp;#39;Aosta").
    return " ".join(html.unescape(html.unescape(_TAG.sub(" ", text))).split())


def read_clip_metadata(path: Path) -> tuple[str, tuple[str, ...]]:
    """``(title, keywords)`` of one SVG from a regex over its head; ``('', ())`` when absent.

    A regex, not an XML parser: many files are not well-formed, and the metadata sits near the top.
    """
    with Path(path).open("rb") as handle:
        data = handle.read(HEAD_BYTES)
        if b"</cc:Work>" not in data:
            data += handle.read()
    work = _WORK.search(data)
    block = work.group(0) if work else data
    title = _TITLE.search(block)
    subject = _SUBJECT.search(block)
    keywords = [_text(li).lower().replace("_", " ") for li in _LI.findall(subject.group(1))] if subject else []
    # Upload tools left object hashes ("hash", "0x8b754fc") among the keywords.
    unique = tuple(
        dict.fromkeys(k for k in keywords if k not in _GENERIC_KEYWORDS and not k.startswith(("hash", "0x")))
    )
    return (_text(title.group(1)) if title else ""), unique[:MAX_KEYWORDS]


def clean_title(raw: str) -> str:
    """'Clipart by Nicu Buculei - glace_06' -> 'glace'."""
    title = _CREDIT_PREFIX.sub("", " ".join(raw.split()))
    title = re.sub(r"\.(svg|png)$", "", title, flags=re.I).replace("_", " ")
    return " ".join(_TRAILING_NUMBER.sub("", title).split())


def _is_word(token: str, vocabulary: set[str]) -> bool:
    token = token.lower()
    candidates = {token, token[:-1] if token.endswith("s") else token}
    if token.endswith("es"):
        candidates.add(token[:-2])
    if token.endswith("ies"):
        candidates.add(token[:-3] + "y")
    return any(c in vocabulary for c in candidates)


def rejection_reason(
    title: str, files_with_title: int, vocabulary: set[str] | None, credited: bool = False
) -> str | None:
    """Why a cleaned title is not a usable caption, or None when it is."""
    if not re.search(r"[a-z]", title, re.I):
        return "empty"
    if _COLLECTION_WORDS.search(title):
        return "collection words"
    if files_with_title >= MAX_FILES_PER_TITLE:
        return "shared by many files"
    if credited and files_with_title >= MAX_FILES_PER_CREDITED_TITLE:
        return "series label"
    if " " in title:
        return None
    if _MIXED_ALNUM.match(title):
        return "file name or ID"
    parts = [part for part in title.split("-") if part]
    if vocabulary is not None and not any(_is_word(part, vocabulary) for part in parts):
        return "single non-English token"
    return None


def find_clips(svg_root: Path) -> tuple[list[Clip], int]:
    """All regular SVG files (symlinks point at files already in the tree) and the symlink count."""
    clips, links = [], 0
    for path in sorted(Path(svg_root).rglob("*.svg")):
        if path.is_symlink():
            links += 1
            continue
        title, keywords = read_clip_metadata(path)
        rel_stem = path.relative_to(svg_root).with_suffix("").as_posix()
        clips.append(Clip(rel_stem, path, title, keywords))
    return clips, links


def filter_clips(clips: list[Clip], vocabulary: set[str] | None) -> tuple[list[tuple[Clip, str]], Counter]:
    """``(clip, caption)`` for clips with a usable, not yet seen caption+content; reasons counted."""
    counts = Counter(clean_title(c.raw_title).lower() for c in clips)
    reasons: Counter = Counter()
    kept, seen_content = [], set()
    for clip in clips:
        caption = clean_title(clip.raw_title)
        credited = bool(_CREDIT_PREFIX.match(clip.raw_title.strip()))
        reason = rejection_reason(caption, counts[caption.lower()], vocabulary, credited)
        if reason is None:
            digest = hashlib.sha1(clip.path.read_bytes()).hexdigest()
            if digest in seen_content:
                reason = "identical file"
            seen_content.add(digest)
        if reason:
            reasons[reason] += 1
        else:
            kept.append((clip, caption))
    return kept, reasons


def _default_vocabulary() -> set[str] | None:
    wordnet_dir = SourcePaths().wordnet_dict
    if not wordnet_dir.is_dir():
        logger.warning("no WordNet at %s: single-token usernames will not be filtered", wordnet_dir)
        return None
    return read_lemma_vocabulary(wordnet_dir)


def _evenly_spaced(items: list, limit: int | None) -> list:
    # Sorted paths cluster by category; an even stride keeps every category in a small build.
    if limit is None or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def _clip_document(clip: Clip, caption: str, png: Path) -> Document:
    folders = clip.rel_stem.split("/")[:-1]
    return Document(
        id=f"clip/{clip.rel_stem}",
        modality="image",
        text=caption,
        image_path=str(png),
        metadata={
            "source": "openclipart",
            "category": folders[0] if folders else "",
            "subcategory": "/".join(folders[1:]),
            "keywords": ",".join(clip.keywords),
            "file": f"{clip.rel_stem}.svg",
        },
    )


def build_openclipart_corpus(
    svg_root: Path,
    media_dir: Path,
    limit: int | None = None,
    workers: int = 2,
    vocabulary: set[str] | None = None,
    max_side: int = 512,
    timeout_s: float = 10.0,
) -> tuple[list[Document], BuildReport]:
    """Render clip art with a usable caption into ``media_dir/openclipart``; resumable.

    PNGs that already exist are reused, so an interrupted build continues where it stopped.
    ``vocabulary`` (lowercase English words) defaults to the WordNet lemmas when installed.
    ``report.filtered`` counts rejected titles by reason; ``report.total`` counts kept candidates.
    """
    svg_root = Path(svg_root)
    clips, links = find_clips(svg_root)
    if vocabulary is None:
        vocabulary = _default_vocabulary()
    kept, reasons = filter_clips(clips, vocabulary)
    reasons["symlink to another file"] = links
    kept = _evenly_spaced(kept, limit)
    report = BuildReport(total=len(kept), filtered=dict(reasons))

    pngs = [media_png_path(media_dir, "openclipart", clip.rel_stem) for clip, _ in kept]
    todo = [i for i, png in enumerate(pngs) if not png.is_file()]
    report.reused = len(kept) - len(todo)
    results = render_many(
        [(kept[i][0].path, pngs[i]) for i in todo],
        workers=workers,
        max_side=max_side,
        timeout_s=timeout_s,
        desc="openclipart",
    )
    failed = {i for i, ok in zip(todo, results) if not ok}

    documents = []
    for i, ((clip, caption), png) in enumerate(zip(kept, pngs)):
        if i in failed:
            report.failed_paths.append(str(clip.path))
            continue
        documents.append(_clip_document(clip, caption, png))
    report.failed, report.rendered = len(failed), len(documents)
    logger.info(
        "openclipart: %d kept of %d files, %d rendered (%d reused), %d failed",
        len(kept),
        len(clips),
        report.rendered,
        report.reused,
        report.failed,
    )
    return documents, report
