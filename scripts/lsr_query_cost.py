"""Where a sparse text query's time goes: encoding, the head, pruning, the inverted index, and its teacher whole.

For the served LSR model of one collection, one dev query at a time: the dense vector (its query student's, or
the teacher's text side), the head and its sparsification with the query cut (over every term, and over the
terms the index holds, as searched), the Seismic search, and the scipy brute force over the forward matrix;
beside them the teacher retriever's whole search. Medians in ms.
Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/lsr_query_cost.py --collection stamps
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def median_ms(function, items) -> float:
    function(items[0])  # warm-up
    timings = []
    for item in items:
        started = time.perf_counter()
        function(item)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


def image_queries(lsr, resources, collection: str, settings, count: int) -> None:
    """The stamps as image queries: the image side's cost with the teacher's and the student's words, and how
    much of the top 10 the student's words keep (there are no image-query judgments to score)."""
    from mmr.collections import load_collection
    from mmr.encoders.registry import STAND_INS
    from mmr.methods.lsr.model import prune_row

    model = lsr.model
    if model.student is None or count <= 0:
        return
    images = load_collection(settings, collection).of_modality("image")[:count]
    features = [resources.image_features([doc], STAND_INS.image, keep_grid=model.needs_grid) for doc in images]
    cut = model.config.query_terms
    head = lsr.search_head

    def with_teacher_words(f):
        return prune_row(model.sparsify(model.teacher.encode_images(f), head=head), cut)

    def with_student_words(f):
        return prune_row(model.encode_image_queries(f, head), cut)

    kept = []
    for f in features:
        teacher_hits = {h.doc_id for h in lsr.search_vector(with_teacher_words(f), 10)}
        kept.append(len({h.doc_id for h in lsr.search_vector(with_student_words(f), 10)} & teacher_hits) / 10)
    print(
        f"image queries ({len(images)} of the collection's images): teacher's words "
        f"{median_ms(with_teacher_words, features):.2f} ms, the student's {median_ms(with_student_words, features):.2f}"
        f" ms (features given, head over the index's terms and query cut included); top 10 kept with the "
        f"student's words {np.mean(kept):.3f}"
    )


def product_costs(lsr, texts) -> None:
    """Why the query head runs in numpy on one BLAS thread: the decoder product of one row in torch and in numpy,
    and the whole search with the head's product on one and on two BLAS threads (a new cache key each time)."""
    from mmr.methods.lsr import head as head_module
    from mmr.types import Query

    weight = lsr.search_head.weight
    row = np.random.default_rng(0).normal(size=(1, weight.shape[0])).astype(np.float32)
    as_torch, row_torch = torch.from_numpy(np.ascontiguousarray(weight.T)), torch.from_numpy(row)
    with torch.inference_mode():
        torch_ms = median_ms(lambda _: torch.nn.functional.linear(row_torch, as_torch), list(range(200)))
    numpy_ms = median_ms(lambda _: row @ weight, list(range(200)))
    print(f"decoder product of one row ({weight.shape[1]} terms): torch {torch_ms:.2f} ms, numpy {numpy_ms:.2f} ms")
    for threads in (1, 2):
        head_module.QUERY_BLAS_THREADS = threads
        timing = median_ms(lambda t, n=threads: lsr.search(Query(text=t[0] + " " * (n + 1)), 10), [[t] for t in texts])
        print(f"lsr search, whole, query head on {threads} BLAS thread(s): {timing:.2f} ms")
    head_module.QUERY_BLAS_THREADS = 1


def main() -> None:
    from mmr.config import Settings
    from mmr.corpus.splits import load_benchmark
    from mmr.methods.lsr.model import prune_row
    from mmr.service import SearchService
    from mmr.types import Query

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="stamps", choices=["stamps", "mixed"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--images", type=int, default=200, help="collection images to use as image queries")
    parser.add_argument("--lists", type=int, nargs="*", default=[5, 10, 20, 40, 80], help="Seismic query cuts to try")
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings = Settings()
    setting = {"stamps": "images", "mixed": "mixed"}[args.collection]
    texts = list(load_benchmark(settings.benchmark_dir, setting, "dev").queries.values())[: args.queries]
    service = SearchService.load(settings, collection_names=[args.collection])
    lsr = service.retrievers[("lsr", args.collection)]
    teacher = service.retrievers[(lsr.model.config.teacher, args.collection)]
    lsr_model = lsr.model
    encode_dense = lsr_model.student.encode if lsr_model.student is not None else lsr_model.teacher.encode_texts
    dense = {text: encode_dense([text]) for text in texts}
    cut = lsr_model.config.query_terms
    sparse = {text: prune_row(lsr_model.sparsify(dense[text], head=lsr.search_head), cut) for text in texts}
    rows = [
        ("dense query vector (" + ("student" if lsr_model.student is not None else "teacher") + ")", encode_dense),
        ("head over every term + sparsify + query cut", lambda t: prune_row(lsr_model.sparsify(dense[t[0]]), cut)),
        (
            f"head over the index's {len(lsr.search_head.terms)} terms + sparsify + query cut (as searched)",
            lambda t: prune_row(lsr_model.sparsify(dense[t[0]], head=lsr.search_head), cut),
        ),
        ("Seismic search (top 10, rescored)", lambda t: lsr.index.search(sparse[t[0]], 10)),
        ("scipy brute force (top 10)", lambda t: lsr.index.search_exact(sparse[t[0]], 10)),
        # A trailing space (same tokens) keeps the retriever's query cache from answering the warm-up's query.
        ("lsr search, whole", lambda t: lsr.search(Query(text=t[0] + " "), 10)),
        (f"teacher ({lsr_model.config.teacher}) search, whole", lambda t: teacher.search(Query(text=t[0]), 10)),
    ]
    terms = np.mean([v.nnz for v in sparse.values()])
    print(f"{args.collection}: {len(texts)} dev queries, {terms:.0f} terms a query, {len(lsr.index)} documents")
    for label, function in rows:
        print(f"{label}: {median_ms(function, [[t] for t in texts]):.2f} ms")
    product_costs(lsr, texts)

    image_queries(lsr, service.resources, args.collection, settings, args.images)
    exact = {t: {hit.doc_id for hit in lsr.index.search_exact(sparse[t], 10)} for t in texts}
    for lists in args.lists:
        found = {t: {hit.doc_id for hit in lsr.index.search(sparse[t], 10, lists)} for t in texts}
        agreement = np.mean([len(found[t] & exact[t]) / len(exact[t]) for t in texts if exact[t]])
        timing = median_ms(lambda t, cut=lists: lsr.index.search(sparse[t[0]], 10, cut), [[t] for t in texts])
        print(f"Seismic over the {lists} heaviest terms' lists: {timing:.2f} ms, top 10 = brute force {agreement:.4f}")


if __name__ == "__main__":
    main()
