"""How Seismic's block size and summaries trade index size, build time and latency on the trained LSR index.

Rebuilds the inverted index of one collection from its stored document vectors at each centroid
fraction (and each summary energy, the share of a block's mass its summary keeps), and times top-10
search of the collection's dev queries against scipy brute force (build settings are chosen on dev, as
models are). Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/sparse_index_sweep.py --collection mixed 0.1 0.05 0.01
    PYTHONPATH=. .venv/bin/python scripts/sparse_index_sweep.py 0.01 --summary-energy 0.4 0.2 0.1
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.splits import load_benchmark
from mmr.methods.lsr.index import SEISMIC_FILE, SUMMARY_ENERGY, SparseIndex
from mmr.methods.lsr.retriever import LSRRetriever
from mmr.retrievers.base import Resources

SETTING = {"stamps": "images", "mixed": "mixed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fractions", nargs="+", type=float, help="centroid fractions to build with")
    parser.add_argument("--collection", default="mixed", choices=sorted(SETTING))
    parser.add_argument("--split", default="dev", choices=["dev", "test"], help="whose queries to time")
    parser.add_argument("--queries", type=int, default=300, help="queries to time (the first N)")
    parser.add_argument("--summary-energy", nargs="+", type=float, default=[SUMMARY_ENERGY], help="each to build with")
    args = parser.parse_args()

    settings = Settings()
    resources = Resources(settings)
    corpus = load_collection(settings, args.collection)
    served = LSRRetriever.load(corpus, resources, settings.indexes_dir / "lsr" / args.collection)
    texts = list(load_benchmark(settings.benchmark_dir, SETTING[args.collection], args.split).queries.values())
    vectors = served.encode_text_queries(texts[: args.queries])
    exact = [{hit.doc_id for hit in served.index.search_exact(v, 10)} for v in vectors]
    index = served.index
    size = f"{len(index)} documents, {index.forward.nnz:,} non-zeros"
    print(f"{args.collection}: {size}, {len(vectors)} {args.split} queries")
    for fraction, energy in itertools.product(args.fractions, args.summary_energy):
        started = time.perf_counter()
        built = SparseIndex(index.forward, index.ids, index.params, centroid_fraction=fraction, summary_energy=energy)
        build_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as folder:
            built.save(Path(folder))
            megabytes = (Path(folder) / SEISMIC_FILE).stat().st_size / 1e6
        started = time.perf_counter()
        found = [{hit.doc_id for hit in built.search(v, 10)} for v in vectors]
        latency_ms = (time.perf_counter() - started) / max(1, len(vectors)) * 1000
        agreement = np.mean([len(f & e) / len(e) for f, e in zip(found, exact) if e])
        print(
            f"centroid_fraction {fraction}, summary_energy {energy}: build {build_seconds:.1f} s, "
            f"{SEISMIC_FILE} {megabytes:.0f} MB, "
            f"search {latency_ms:.2f} ms/query, top 10 = brute force {agreement:.4f}"
        )


if __name__ == "__main__":
    main()
