"""Training the Dense2Sparse head by distillation from a frozen dense teacher.

The teacher's vectors for every training query and document are computed once; an epoch is then
only the head. Per batch: with probability p (annealed 1 -> 0) texts are restricted to their own
tokens; the loss is the two-way cross-entropy of sparse in-batch scores against the teacher's
in-batch softmax, plus a sparsity penalty (the paper's L1, or SPLADE's FLOPS) whose weight warms up
quadratically. The checkpoint, the serving-time text mode (expanded or own tokens) and the query pruning
are chosen on the mean dev MRR@10 of both settings (see dev.py), among checkpoints taken once the penalty
is at full weight (so the chosen model is as sparse as configured).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np
import torch

from mmr.config import Settings
from mmr.encoders.registry import STAND_INS, checkpoint_path
from mmr.methods.lsr.dev import TEXT_MODES, DevProbe, choose_query_cut, dev_probes, mean_over, relative_cost
from mmr.methods.lsr.head import (
    SPARSITY_PENALTIES,
    SparseHead,
    Vocabulary,
    distillation_loss,
    document_mask,
    expansion_off_probability,
    regulariser_weight,
)
from mmr.methods.lsr.model import LEXICAL_QUERIES, LSRConfig, LSRModel
from mmr.methods.lsr.projector import own_word_first, pretrain_projector, projection_targets
from mmr.methods.lsr.settings import LSRTraining
from mmr.methods.lsr.student import (
    LAYERS_STUDENT,
    NO_STUDENT,
    STATIC_STUDENT,
    QueryStudent,
    StaticQueryStudent,
    teach_student,
)
from mmr.methods.lsr.tables import TeacherTables, teacher_tables
from mmr.methods.lsr.teacher import choose_teacher, load_teacher, teacher_tag
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import DualEncoderModel
from mmr.training.common import MANIFEST, CheapestWithinTie, Manifest, minibatches, seed_everything
from mmr.training.data import TrainingData, load_training_data, unlabelled_wordnet_pairs
from mmr.training.stack import train_steps

log = logging.getLogger(__name__)

NAME = "lsr"


def train_epoch(
    head: SparseHead,
    tables: TeacherTables,
    vocabulary: Vocabulary,
    optimizer,
    hp: LSRTraining,
    rng: np.random.Generator,
    step: int,
    total_steps: int,
    label: str,
) -> tuple[int, dict]:
    warmup = int(hp.penalty_warmup * total_steps)
    penalty = SPARSITY_PENALTIES[hp.penalty]
    sums = {"distill": 0.0, "penalty": 0.0, "restricted": 0}
    batches = list(minibatches(len(tables.query_row), hp.batch_size, rng))
    lexical = head.query_weights is not None
    done = 0

    def loss_of(batch: np.ndarray) -> torch.Tensor:
        nonlocal done
        at = step + done  # the schedules read the global step
        done += 1
        q_rows, d_rows = tables.query_row[batch], tables.document_row[batch]
        if hp.hard_negatives:
            d_rows = np.concatenate([d_rows, tables.hard_negatives_for(batch, rng)])
        restrict = rng.random() < expansion_off_probability(at, total_steps, hp.anneal_fraction, hp.expansion_floor)
        own = vocabulary.mask([tables.query_terms[r] for r in q_rows]) if restrict or lexical else None
        d_mask = document_mask([tables.document_terms[r] for r in d_rows], vocabulary) if restrict else None
        q_dense, d_dense = tables.queries[q_rows], tables.documents[d_rows]
        q_read = q_dense if tables.query_inputs is None else tables.query_inputs[q_rows]
        q_sparse = head.queries(q_read, own, expand=not restrict)
        d_sparse = head(d_dense, d_mask)
        distill = distillation_loss(q_sparse, d_sparse, q_dense, d_dense, hp.teacher_temperature)
        q_penalty, d_penalty = penalty(q_sparse), penalty(d_sparse)
        sums["distill"] += float(distill.detach())
        sums["penalty"] += float(q_penalty.detach() + d_penalty.detach())
        sums["restricted"] += int(restrict)
        q_weight = regulariser_weight(at, warmup, hp.penalty_query)
        return distill + q_weight * q_penalty + regulariser_weight(at, warmup, hp.penalty_document) * d_penalty

    train_steps(batches, loss_of, optimizer, desc=label, unit="batch", bfloat16=hp.bfloat16)
    step += done
    n = max(1, len(batches))
    return step, {
        "loss_distill": round(sums["distill"] / n, 4),
        hp.penalty: round(sums["penalty"] / n, 2),
        "restricted_batches": sums["restricted"],
        "batches": len(batches),
    }


def word_embeddings(path) -> torch.Tensor:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(path)).get_input_embeddings().weight.detach().clone()


def teach_projector(
    head: SparseHead, tables: TeacherTables, vocabulary: Vocabulary, probe: DevProbe, hp: LSRTraining, rng
) -> dict:
    """projector.py's pretraining, with what it did to the first dev setting's queries."""
    started = time.time()
    before = own_word_first(head, probe.queries, probe.query_terms)
    vectors, targets = projection_targets(tables, vocabulary)
    losses = pretrain_projector(
        head, vectors, targets, vocabulary, hp.projector_epochs, hp.batch_size, hp.projector_learning_rate, rng
    )
    entry = {
        "stage": "projector",
        "texts_and_images": len(targets),
        "loss": losses,
        f"dev_{probe.name}_heaviest_term_own_before": round(before, 3),
        f"dev_{probe.name}_heaviest_term_own_after": round(own_word_first(head, probe.queries, probe.query_terms), 3),
        "seconds": round(time.time() - started, 1),
    }
    log.info("lsr %s", entry)
    return entry


def teach_query_student(
    teacher: DualEncoderModel,
    tables: TeacherTables,
    data: TrainingData,
    resources: Resources,
    probes: list[DevProbe],
    hp: LSRTraining,
    rng: np.random.Generator,
) -> tuple[QueryStudent | StaticQueryStudent, dict]:
    """student.py's query encoder, taught on what it will encode: every training query and, where the teacher
    verbalises images, every training image's words (not the glosses: documents keep the teacher). Sets what
    the head reads for each training and dev query to the student's vectors."""
    started = time.time()
    texts, targets = list(tables.query_texts), [tables.queries.numpy()]
    if hasattr(teacher, "verbalisations"):
        words = teacher.verbalisations(data.image_features(resources, keep_grid=teacher.needs_grid))
        texts += words
        targets.append(np.asarray(teacher.encode_texts(words), np.float32))
    if hp.query_student == STATIC_STUDENT:
        tokenizer = Vocabulary.from_path(checkpoint_path(STAND_INS.text)).tokenizer
        student = StaticQueryStudent.from_teacher(tokenizer, teacher.encode_texts)
        learning_rate = hp.static_student_learning_rate
    else:
        student = QueryStudent.from_base(checkpoint_path(STAND_INS.text), hp.query_student_layers, teacher.dim)
        learning_rate = hp.student_learning_rate
    before = {probe.name: _cosine(student.encode(probe.query_texts), probe.queries) for probe in probes}
    losses = teach_student(
        student, texts, np.concatenate(targets), hp.student_epochs, hp.student_batch_size, learning_rate, rng
    )
    entry = {"stage": "query student", "kind": student.kind, "texts": len(texts), "loss": losses}
    if student.kind == LAYERS_STUDENT:
        entry["layers"] = hp.query_student_layers
    tables.query_inputs = torch.from_numpy(student.encode(tables.query_texts))
    for probe in probes:
        probe.query_inputs = torch.from_numpy(student.encode(probe.query_texts))
        after = _cosine(probe.query_inputs.numpy(), probe.queries)
        entry[f"dev_{probe.name}_cosine_to_teacher"] = [round(before[probe.name], 4), round(after, 4)]
    entry["seconds"] = round(time.time() - started, 1)
    log.info("lsr %s", entry)
    return student, entry


def _cosine(vectors: np.ndarray, teacher: torch.Tensor) -> float:
    return float((torch.from_numpy(np.asarray(vectors, np.float32)) * teacher).sum(1).mean())


def head_optimizer(head: SparseHead, hp: LSRTraining) -> torch.optim.Optimizer:
    """AdamW over the head. The lexical query weights get a learning rate of their own and no decay: a term's
    weight moves only in the batches whose queries hold it (a few percent of them), and decay would pull the
    rest towards zero."""
    lexical = [head.query_weights] if head.query_weights is not None else []
    groups = [{"params": [p for p in head.parameters() if all(p is not q for q in lexical)]}]
    if lexical:
        groups.append({"params": lexical, "lr": hp.query_weights_learning_rate, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=hp.learning_rate, weight_decay=hp.weight_decay)


def fit(
    head: SparseHead,
    tables: TeacherTables,
    vocabulary: Vocabulary,
    probes: list[DevProbe],
    hp: LSRTraining,
    rng: np.random.Generator,
) -> tuple[CheapestWithinTie, list[dict]]:
    optimizer = head_optimizer(head, hp)
    steps_per_epoch = len(list(minibatches(len(tables.query_row), hp.batch_size, np.random.default_rng(0))))
    total, step = hp.epochs * steps_per_epoch, 0
    teacher = {f"dev_{probe.name}": round(probe.teacher_mrr, 4) for probe in probes}
    best, history = CheapestWithinTie(hp.checkpoint_tolerance), [{"stage": "teacher", **teacher}]
    for epoch in range(1, hp.epochs + 1):
        started = time.time()
        step, stats = train_epoch(head, tables, vocabulary, optimizer, hp, rng, step, total, f"lsr epoch {epoch}")
        full_penalty = step >= int(hp.penalty_warmup * total)
        # Only checkpoints at full penalty weight may be chosen; before that, the first dev setting alone
        # shows the curve (the mixed collection's dense early vectors cost ~15 s an epoch to score).
        scored = probes if full_penalty else probes[:1]
        dev = {key: value for probe in scored for key, value in probe.score(head, hp.text_modes).items()}
        history.append(
            {
                "stage": f"epoch {epoch}",
                **stats,
                **dev,
                "penalty_at_full_weight": full_penalty,
                "seconds": round(time.time() - started, 1),
            }
        )
        log.info("lsr %s", history[-1])
        if full_penalty:
            for mode in hp.text_modes:
                best.offer(
                    mean_over(probes, dev, mode), relative_cost(probes, dev, mode), head, f"epoch {epoch}|{mode}"
                )
    return best, history


def train(
    settings: Settings, resources: Resources, seed: int = 0, hp: LSRTraining | None = None, save: bool = True
) -> Manifest:
    """Train, choose on dev, and (``save``) write the model and its manifest; ``save=False`` only reports,
    for exploratory runs that must not replace the served model."""
    hp = hp or LSRTraining()
    torch.set_num_threads(settings.training_threads)
    started = time.time()
    rng = seed_everything(seed)
    teacher_name = choose_teacher(settings, hp.teacher)
    teacher = load_teacher(teacher_name, resources)
    vocabulary = Vocabulary.from_path(checkpoint_path(STAND_INS.text))
    data = load_training_data(settings, resources)
    unlabelled = min(hp.unlabelled_pairs, int(hp.unlabelled_per_labelled * len(data.examples)))
    if unlabelled:
        data = data.with_examples(*unlabelled_wordnet_pairs(settings, unlabelled, seed))
    log.info("lsr: %d training pairs", len(data.examples))
    tables = teacher_tables(data, teacher, vocabulary, resources)
    if hp.hard_negatives:
        tables.mine_image_neighbours(hp.hard_negatives)
    probes = dev_probes(settings, resources, teacher, vocabulary)
    embeddings = word_embeddings(checkpoint_path(STAND_INS.text))
    head = SparseHead(teacher.dim, embeddings, vocabulary.usable, lexical_queries=hp.query_encoder == LEXICAL_QUERIES)
    projector = teach_projector(head, tables, vocabulary, probes[0], hp, rng) if hp.projector_epochs else None
    student, taught = None, []
    if hp.query_student != NO_STUDENT:
        student, entry = teach_query_student(teacher, tables, data, resources, probes, hp, rng)
        taught.append(entry)
    best, history = fit(head, tables, vocabulary, probes, hp, rng)
    history[1:1] = [entry for entry in (projector, *taught) if entry]
    best.restore(head)
    epoch_tag, mode = best.tag.split("|")
    cuts = (*hp.query_cuts, vocabulary.size)
    by_probe = {probe.name: probe.query_cut_scores(head, TEXT_MODES[mode], cuts) for probe in probes}
    # What the student costs: the chosen head over the teacher's own query vectors, which it did not train on.
    teacher_queries = {
        f"dev_{probe.name}_head_over_teacher_queries": round(
            probe.mrr(*probe.encode_sparse(head, TEXT_MODES[mode], probe.queries)), 4
        )
        for probe in probes
        if student is not None
    }
    cut_scores = {cut: float(np.mean([scores[cut] for scores in by_probe.values()])) for cut in cuts}
    query_terms = choose_query_cut(cut_scores, hp.query_cut_tolerance)
    log.info("lsr: mean dev MRR@10 by query terms kept %s -> %s", cut_scores, query_terms or "all")
    config = LSRConfig(
        teacher_name,
        teacher_tag(teacher_name, settings),
        teacher.dim,
        embeddings.shape[1],
        embeddings.shape[0],
        expand_texts=TEXT_MODES[mode],
        query_terms=query_terms,
        query_encoder=hp.query_encoder,
        query_student=hp.query_student,
        query_student_layers=hp.query_student_layers if hp.query_student == LAYERS_STUDENT else 0,
    )
    folder = settings.model_dir(NAME)
    if save:
        (folder / MANIFEST).unlink(missing_ok=True)  # a half-written model must not pass for the old one
        LSRModel(config, head, vocabulary, teacher, student).save(folder)
    history.append(
        {
            "stage": "chosen",
            "checkpoint": epoch_tag,
            "text_mode": mode,
            "query_terms": query_terms,
            **teacher_queries,
            **{
                f"dev_{name}_by_query_terms": {str(cut): round(score, 4) for cut, score in scores.items()}
                for name, scores in by_probe.items()
            },
        }
    )
    manifest = Manifest(
        NAME,
        data.fingerprint,
        # as every method reports: the images setting's dev score, here of the model as served (query cut too)
        round(by_probe[probes[0].name][query_terms or vocabulary.size], 4),
        seed,
        round(time.time() - started, 1),
        config={**asdict(hp), **asdict(config)},
        history=history,
    )
    if save:
        manifest.save(folder)  # last: its hash keys the indexes
    return manifest
