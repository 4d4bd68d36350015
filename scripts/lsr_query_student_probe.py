"""Probe: which query student can the sparse retriever's head read, and what does a query cost with it?

Takes the served sparse head as it is (distilled on the teacher's query vectors, or on a student's if the
served model has one) and teaches query students (student.py, the stage `mmr train lsr --set
query_student=...` runs), then prints, for each, the dev MRR@10 of both settings with the student's queries
through that head against the teacher's queries through it, and what encoding one query costs (p50 over the
dev queries, one at a time) against the teacher's text side. A head distilled on the student's vectors can do
better than this probe shows. What it showed is in docs/findings.md ("A query student").

Run after `python -m mmr train lsr`:

    PYTHONPATH=. .venv/bin/python scripts/lsr_query_student_probe.py --students static layers:2
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
    from mmr.methods.lsr.tables import teacher_tables
    from mmr.methods.lsr.training import LSRTraining, teach_query_student
    from mmr.retrievers.base import Resources
    from mmr.training.common import seed_everything
    from mmr.training.data import load_training_data, unlabelled_wordnet_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", nargs="+", default=["static", "layers:2"], help="static or layers:N")
    parser.add_argument("--epochs", type=int, default=LSRTraining.student_epochs)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the kind's in LSRTraining")
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
    expand = model.config.expand_texts
    teacher_scores = {probe.name: probe.mrr(*probe.encode(model.head, expand, probe.queries)) for probe in probes}
    texts = probes[0].query_texts[:200]
    print(f"teacher text side: p50 {p50_ms(model.teacher.encode_texts, texts):.2f} ms a query")
    for spec in args.students:
        kind, _, layers = spec.partition(":")
        chosen = replace(hp, query_student=kind, query_student_layers=int(layers or 2), student_epochs=args.epochs)
        if args.learning_rate is not None:
            chosen = replace(
                chosen, student_learning_rate=args.learning_rate, static_student_learning_rate=args.learning_rate
            )
        student, entry = teach_query_student(model.teacher, tables, data, resources, probes, chosen, rng)
        cells = [
            f"{probe.name} {probe.mrr(*probe.encode(model.head, expand)):.4f} of {teacher_scores[probe.name]:.4f} "
            f"(cosine {entry[f'dev_{probe.name}_cosine_to_teacher']})"
            for probe in probes
        ]
        print(
            f"{spec}, {args.epochs} epochs ({entry['seconds']:.0f} s, loss {entry['loss']}): "
            + "; ".join(cells)
            + f"; p50 {p50_ms(student.encode, texts):.2f} ms a query"
        )


if __name__ == "__main__":
    main()
