"""A tiny index_store built by the real build code from a slice of the real Debian data.

A few dozen stamps, openclipart drawings and WordNet synsets, linked into source folders of their own,
go through ``build_corpora``, ``build_training_corpus`` and ``build_indexes`` exactly as on a fresh
machine. Every trained method then runs its whole training code on it in seconds: its epochs are a
step or two each.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from unittest import mock

from mmr.config import Settings, SourcePaths

STAMPS, CLIPS, SYNSETS = 60, 120, 150


def _link_slice(files: list[Path], root: Path, out: Path, siblings: tuple[str, ...] = (), copy=False) -> None:
    for path in files:
        for source in [path, *(path.with_suffix(s) for s in siblings)]:
            if source.exists():
                target = out / source.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                if copy:  # the openclipart build skips symlinks (the package links duplicates)
                    shutil.copyfile(source, target)
                else:
                    target.symlink_to(source)


def _every(files: list[Path], count: int) -> list[Path]:
    step = max(1, len(files) // count)
    return files[::step][:count]


def tiny_sources(folder: Path) -> SourcePaths:
    real = SourcePaths()
    stamps = [p for p in sorted(real.tuxpaint_stamps.rglob("*.txt")) if p.with_suffix(".png").exists()]
    _link_slice(_every(stamps, STAMPS), real.tuxpaint_stamps, folder / "stamps", (".png",))
    clips = [p for p in sorted(real.openclipart_svg.rglob("*.svg")) if not p.is_symlink()]
    _link_slice(_every(clips, CLIPS), real.openclipart_svg, folder / "openclipart", copy=True)
    return SourcePaths(folder / "stamps", folder / "openclipart", real.wordnet_dict)


def build_tiny_store(folder: Path) -> Settings:
    """Corpora, benchmark splits, the openclipart training pairs and the untrained retrievers' indexes."""
    from mmr import build
    from mmr.retrievers import Resources

    settings = Settings(
        index_store=folder / "index_store", data_dir=folder / "data", sources=tiny_sources(folder / "sources")
    )
    with mock.patch.object(build, "WORDNET_SIZE", SYNSETS):
        summary = build.build_corpora(settings)
    build.build_training_corpus(settings)
    build.build_indexes(settings, Resources(settings, device="cpu"), summary=summary)
    return settings
