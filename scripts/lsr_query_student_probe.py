"""Probe: how many MiniLM layers does the sparse retriever's query student need?

Takes the served sparse head as it is and teaches query students of several depths (student.py, the same
stage `mmr train lsr --set query_student_layers=N` runs), then prints, for each, the dev MRR@10 of both
settings with student queries against the teacher's queries through the same head, and what encoding one
query costs (p50 over the dev queries, one at a time) against the teacher's text side. What it showed is in
docs/findings.md ("A query student").

Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/lsr_query_student_probe.py --layers 1 2 3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch


def p50_ms(encode, texts) -> float:
    encode(texts[:5])  # warm-up
    timings = []
    for text in texts:
        started = time.perf_counter()
        encode([text])
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


def main() -> None:
    from mmr.config import Settings
    from mmr.methods.lsr.dev import dev_probes
    from mmr.methods.lsr.model import LSRModel
    from mmr.methods.lsr.training import LSRTraining, teach_query_student, teacher_tables
    from mmr.retrievers.base import Resources
    from mmr.training.common import seed_everything
    from mmr.training.data import load_training_data, unlabelled_wordnet_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=LSRTraining.student_epochs)
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings, hp = Settings(), LSRTraining()
    resources = Resources(settings)
    model = LSRModel.load(settings.model_dir("lsr"), resources)
    rng = seed_everything(0)
    data = load_training_data(settings, resources)
    unlabelled = min(hp.unlabelled_pairs, int(hp.unlabelled_per_labelled * len(data.examples)))
    data = data.with_examples(*unlabelled_wordnet_pairs(settings, unlabelled, 0))
    tables = teacher_tables(data, model.teacher, model.vocabulary, resources)
    probes = dev_probes(settings, resources, model.teacher, model.vocabulary)
    texts = probes[0].query_texts[:200]
    print(f"teacher text side: p50 {p50_ms(model.teacher.encode_texts, texts):.2f} ms a query")
    for layers in args.layers:
        settings_used = replace(hp, query_student_layers=layers, student_epochs=args.epochs)
        student, entry = teach_query_student(
            model.teacher, tables, data, resources, probes, model.head, model.config.expand_texts, settings_used, rng
        )
        cells = [
            f"{probe.name} {entry[f'dev_{probe.name}_student_queries']:.4f} of "
            f"{entry[f'dev_{probe.name}_teacher_queries']:.4f} (cosine {entry[f'dev_{probe.name}_cosine_to_teacher']})"
            for probe in probes
        ]
        print(
            f"{layers} layers, {args.epochs} epochs ({entry['seconds']:.0f} s, loss {entry['loss']}): "
            + "; ".join(cells)
            + f"; p50 {p50_ms(student.encode, texts):.2f} ms a query"
        )


if __name__ == "__main__":
    main()
