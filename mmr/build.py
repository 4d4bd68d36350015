"""Build what the app and the benchmark load: corpora, benchmark splits, and retriever indexes.

Each step is skipped when its output exists (``force`` rebuilds), so the set-up command can call
this on every start and only a fresh machine pays for it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from mmr.collections import collections as known_collections
from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.format import Corpus, write_documents
from mmr.retrievers import RETRIEVERS, Resources, retriever_spec
from mmr.service import index_folder

log = logging.getLogger(__name__)

WORDNET_SIZE = 5000
# Under 1% of the source files fail to render normally (one stamp, ~0.7% of openclipart). Far more
# means the renderer itself broke (an uninstalled libcairo2, or a script without a __main__ guard,
# whose render processes then re-run it and die), and a corpus written then would train and index
# on the few images that did render, with nothing to say so.
MAX_FAILED_RENDER_SHARE = 0.2


class RenderFailureError(RuntimeError):
    """Too many of a corpus's images failed to render to write it."""


@dataclass
class BuildSummary:
    steps: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _description_words(stamps: list) -> set[str]:
    return {word for doc in stamps for word in re.findall(r"[a-z]{3,}", doc.text.lower())}


def build_corpora(settings: Settings, force: bool = False, summary: BuildSummary | None = None) -> BuildSummary:
    from mmr.corpus.splits import build_benchmark
    from mmr.corpus.tuxpaint import build_stamps_corpus
    from mmr.corpus.wordnet import build_wordnet_corpus

    summary = summary or BuildSummary()
    stamps_path = settings.corpora_dir / "stamps.jsonl"
    wordnet_path = settings.corpora_dir / "wordnet.jsonl"
    if force or not stamps_path.exists():
        _require(settings.sources.tuxpaint_stamps, "tuxpaint-stamps-default")
        stamps, report = build_stamps_corpus(settings.sources.tuxpaint_stamps, settings.media_dir)
        _check_rendered("stamps", report)
        write_documents(stamps, stamps_path)
        summary.steps.append(f"stamps corpus: {len(stamps)} images ({report.failed} failed to render)")
        if report.failed:
            summary.warnings.append(f"{report.failed} stamps could not be rendered: {report.failed_paths[:5]}")
    else:
        summary.skipped.append(f"stamps corpus ({stamps_path})")
    stamps = list(Corpus.from_jsonl(stamps_path).documents)
    if force or not wordnet_path.exists():
        _require(settings.sources.wordnet_dict, "wordnet-base")
        wordnet = build_wordnet_corpus(
            settings.sources.wordnet_dict, size=WORDNET_SIZE, prefer_words=sorted(_description_words(stamps))
        )
        write_documents(wordnet, wordnet_path)
        summary.steps.append(f"wordnet corpus: {len(wordnet)} text documents")
    else:
        summary.skipped.append(f"wordnet corpus ({wordnet_path})")
    from mmr.corpus.splits import SPLITS_VERSION

    if force or not (settings.benchmark_dir / SPLITS_VERSION / "manifest.json").exists():
        wordnet_docs = list(Corpus.from_jsonl(wordnet_path).documents)
        build_benchmark(stamps, wordnet_docs, settings.benchmark_dir)
        summary.steps.append(f"benchmark splits {SPLITS_VERSION}")
    else:
        summary.skipped.append(f"benchmark splits {SPLITS_VERSION}")
    return summary


def build_training_corpus(settings: Settings, force: bool = False) -> Path:
    """openclipart image-caption pairs, the training set of the trained retrievers (never evaluated on)."""
    from mmr.corpus.openclipart import build_openclipart_corpus

    path = settings.corpora_dir / "openclipart.jsonl"
    if force or not path.exists():
        _require(settings.sources.openclipart_svg, "openclipart-svg")
        clips, report = build_openclipart_corpus(settings.sources.openclipart_svg, settings.media_dir)
        _check_rendered("openclipart", report)
        write_documents(clips, path)
        log.info("openclipart corpus: %d pairs (%d failed to render)", len(clips), report.failed)
    return path


def build_indexes(
    settings: Settings,
    resources: Resources,
    retriever_names: list[str] | None = None,
    collection_names: list[str] | None = None,
    force: bool = False,
    summary: BuildSummary | None = None,
    include_trained: bool = False,
) -> BuildSummary:
    """Build indexes. Trained retrievers are built only when asked (``mmr train`` does) or when
    their model exists but the index does not (e.g. models copied from another machine)."""
    summary = summary or BuildSummary()
    names = retriever_names or list(RETRIEVERS)
    for collection_name in collection_names or list(known_collections(settings)):
        corpus = load_collection(settings, collection_name)
        for name in names:
            spec = retriever_spec(name)
            folder = index_folder(settings, name, collection_name)
            model_ready = (settings.model_dir(name) / "manifest.json").exists()
            if unmet := spec.unmet_requirement():
                summary.skipped.append(f"{name}/{collection_name}: not configured: {unmet}")
                continue
            if spec.trained and not (include_trained or model_ready):
                summary.skipped.append(f"{name}/{collection_name}: trained retriever, use `python -m mmr train {name}`")
                continue
            if not force and (folder / "params.json").exists():
                summary.skipped.append(f"{name}/{collection_name} index")
                continue
            log.info("building %s on %s (%d documents)", name, collection_name, len(corpus))
            spec.retriever_class().build(corpus, resources, folder)
            summary.steps.append(f"{name}/{collection_name} index: {len(corpus)} documents")
    return summary


def _check_rendered(corpus: str, report) -> None:
    """Refuse to write a corpus most of whose images did not render (see MAX_FAILED_RENDER_SHARE)."""
    if report.total and report.failed > MAX_FAILED_RENDER_SHARE * report.total:
        raise RenderFailureError(
            f"{report.failed} of {report.total} {corpus} images failed to render (e.g. {report.failed_paths[:3]}), "
            f'so the {corpus} corpus was not written. Check that SVGs render (`python -c "import cairosvg"`, '
            "Debian's libcairo2) and that a script calling the build has an `if __name__ == '__main__':` guard, "
            "then run it again: the images that did render are kept and reused."
        )


def _require(path: Path, debian_package: str) -> None:
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{path} is missing: install the Debian package with `apt-get install {debian_package}` "
            "(or run `make setup`, which does it)"
        )
