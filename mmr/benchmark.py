"""Speed, measured: encoding throughput for index building and per-retriever query latency.

Numbers come from this module only; tests never assert on time.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from mmr.corpus.format import Corpus
from mmr.corpus.images import load_image
from mmr.encoders.registry import STAND_INS
from mmr.service import SearchService
from mmr.types import Query


@dataclass(frozen=True)
class Throughput:
    what: str
    items: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.items / self.seconds if self.seconds else float("nan")


@dataclass(frozen=True)
class Latency:
    retriever: str
    query_modality: str
    p50_ms: float
    p95_ms: float
    queries: int


def measure_encoding(service: SearchService, corpus: Corpus, texts: int = 1000, images: int = 200) -> list[Throughput]:
    shared = service.resources.encoder(STAND_INS.text)
    text_encoder = getattr(shared, "uncached", shared)  # the encoder itself, not its disk cache
    image_encoder = service.resources.encoder(STAND_INS.image)
    text_docs = [d.text for d in corpus.documents if d.modality == "text"] or [d.text for d in corpus.documents]
    sample_texts = (text_docs * (texts // max(len(text_docs), 1) + 1))[:texts]
    image_paths = [d.image_path for d in corpus.documents if d.modality == "image"][:images]
    text_encoder.encode(sample_texts[:64])  # warm-up: first call pays for lazy initialisation
    start = time.perf_counter()
    text_encoder.encode(sample_texts)
    text_seconds = time.perf_counter() - start
    start = time.perf_counter()
    image_encoder.features([load_image(path) for path in image_paths])
    image_seconds = time.perf_counter() - start
    return [
        Throughput(
            f"text documents, {text_encoder.name} (batch {text_encoder.batch_size})", len(sample_texts), text_seconds
        ),
        Throughput(
            f"images incl. decoding, {image_encoder.name} (batch {image_encoder.batch_size})",
            len(image_paths),
            image_seconds,
        ),
    ]


def measure_latency(
    service: SearchService, collection: str, text_queries: list[str], image_paths: list[str], k: int = 10
) -> list[Latency]:
    queries = {
        "text": [Query(text=text) for text in text_queries],
        "image": [Query(image=load_image(path), image_sha=str(i)) for i, path in enumerate(image_paths)],
    }
    results = []
    for name in service.available(collection):
        retriever = service.retrievers[(name, collection)]
        for modality, batch in queries.items():
            retriever.search(batch[0], k)  # warm-up
            timings = []
            for query in batch:
                start = time.perf_counter()
                retriever.search(query, k)
                timings.append((time.perf_counter() - start) * 1000)
            results.append(
                Latency(
                    name, modality, float(np.percentile(timings, 50)), float(np.percentile(timings, 95)), len(timings)
                )
            )
    return results


def machine_line() -> str:
    # The load average is part of the result: on a shared 2-core machine it moves latencies a lot.
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {'cuda' if torch.cuda.is_available() else 'cpu'}, "
        f"load average (1, 5, 15 min) at the end: {load}"
    )


def markdown_report(throughput: list[Throughput], latency: list[Latency], collection: str) -> str:
    lines = [f"Machine: {machine_line()}", "", "| index building | items | seconds | items/s |", "|---|---|---|---|"]
    lines += [f"| {t.what} | {t.items} | {t.seconds:.1f} | {t.per_second:.1f} |" for t in throughput]
    lines += [
        "",
        f"Query latency on `{collection}`, top 10, one query at a time (ms):",
        "",
        "| retriever | query | p50 | p95 | queries |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.retriever} | {r.query_modality} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.queries} |" for r in latency
    ]
    return "\n".join(lines)
