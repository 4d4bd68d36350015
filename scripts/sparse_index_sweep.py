"""How Seismic's block size trades index size, build time and latency on the trained LSR index.

Rebuilds the inverted index of one collection from its stored document vectors at each centroid
fraction, and times top-10 search of the collection's test queries against scipy brute force.
Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/sparse_index_sweep.py --collection mixed 0.1 0.05 0.01
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mmr.collections import load_collection
from mmr.config import Settings
from mmr.corpus.splits import load_benchmark
from mmr.methods.lsr.index import SEISMIC_FILE, SparseIndex
from mmr.methods.lsr.retriever import LSRRetriever
from mmr.retrievers.base import Resources

SETTING = {"stamps": "images", "mixed": "mixed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fractions", nargs="+", type=float, help="centroid fractions to build with")
    parser.add_argument("--collection", default="mixed", choices=sorted(SETTING))
    parser.add_argument("--queries", type=int, default=300, help="test queries to time (the first N)")
    args = parser.parse_args()

    settings = Settings()
    resources = Resources(settings)
    corpus = load_collection(settings, args.collection)
    served = LSRRetriever.load(corpus, resources, settings.indexes_dir / "lsr" / args.collection)
    texts = list(load_benchmark(settings.benchmark_dir, SETTING[args.collection], "test").queries.values())
    vectors = served.encode_text_queries(texts[: args.queries])
    exact = [{hit.doc_id for hit in served.index.search_exact(v, 10)} for v in vectors]
    index = served.index
    print(f"{args.collection}: {len(index)} documents, {index.forward.nnz:,} non-zeros, {len(vectors)} queries")
    for fraction in args.fractions:
        started = time.perf_counter()
        built = SparseIndex(index.forward, index.ids, index.params, centroid_fraction=fraction)
        build_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as folder:
            built.save(Path(folder))
            megabytes = (Path(folder) / SEISMIC_FILE).stat().st_size / 1e6
        started = time.perf_counter()
        found = [{hit.doc_id for hit in built.search(v, 10)} for v in vectors]
        latency_ms = (time.perf_counter() - started) / max(1, len(vectors)) * 1000
        agreement = np.mean([len(f & e) / len(e) for f, e in zip(found, exact) if e])
        print(
            f"centroid_fraction {fraction}: build {build_seconds:.1f} s, {SEISMIC_FILE} {megabytes:.0f} MB, "
            f"search {latency_ms:.2f} ms/query, top 10 = brute force {agreement:.4f}"
        )


if __name__ == "__main__":
    main()
