"""MARVEL's training stages for a visual-token encoder; CIEA runs the same stages with its extra loss.

(1) ``pretrain_visual``: the visual module learns to speak to the frozen language model (image-only
    document vs its caption, symmetric InfoNCE). (2) ``train_language`` without negatives: DPR, in-batch
    over mixed-modality positives, vision frozen. (3) ``mine``: the model's own top-100 over the training
    corpus, one image and one text negative per query. (4) ``train_language`` with them: ANCE.

Departures, both for a 2-core CPU budget: the language-model stages train the top ``trainable_layers``
layers (the bottom ones and the visual module stay frozen, so their outputs are computed once, see
visual_states.py), and epochs are fractional. Every stage ends with a dev score; the best state seen
on dev is what training returns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from mmr.encoders.base import ImageFeatures
from mmr.methods.visual_states import DevTable, TrainingTable, grid_rows, lower_states
from mmr.methods.visual_tokens import VisualTokenEncoder
from mmr.training.common import cosine_with_warmup, info_nce, mine_hard_negatives
from mmr.training.data import mrr_at_10
from mmr.training.stack import DevLog, FrozenStates, masked_contrastive, train_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarvelStages:
    batch_size: int = 64
    visual_lr: float = (
        3e-5  # the linear map: its many inputs (a grid state's channels) make a small step a large change of a token
    )
    word_lr: float = 2e-4  # the class-word table, the two markers and the logit scale
    visual_epochs: float = 1.0
    extractor_lr: float = 1e-4  # CIEA's extractor layer
    lm_lr: float = 5e-5
    dpr_epochs: float = 1.0
    ance_epochs: float = 1.0
    trainable_layers: int = 2
    weight_decay: float = 0.2  # MARVEL's
    mining_depth: int = 100
    # CIEA's extractor trains in the language-model stages too, as CIEA trains it with the rest: the image
    # documents then take a full pass each step (the cached states below the trained layers would hold an
    # extractor that no longer exists), 1.7x the cost of an ANCE step. Off: dev tied (docs/findings.md).
    extractor_in_language: bool = False
    # Each step's products in bfloat16 (stack.train_steps; weights stay float32): on this machine's bfloat16 units
    # MARVEL trained in 124 s instead of 160 and CIEA in 113 s instead of 136 (scripts/bfloat16_check.py), dev
    # moving by up to .011 either way, inside the spread between clones (docs/findings.md, "bfloat16").
    bfloat16: bool = True


class StageTrainer:
    """Runs the stages on one model; ``auxiliary`` (CIEA's second loss) adds its term to each step."""

    def __init__(
        self,
        model: VisualTokenEncoder,
        table: TrainingTable,
        dev: DevTable,
        settings: MarvelStages,
        rng: np.random.Generator,
        captioner=None,
        auxiliary=None,
        captions_in_pretraining: bool = True,
    ):
        self.model, self.table, self.dev, self.settings, self.rng = model, table, dev, settings, rng
        self.captioner, self.auxiliary = captioner, auxiliary
        self.captions = captioner(ImageFeatures(table.pooled, table.logits, None)) if captioner else None
        self.dev_captions = captioner(ImageFeatures(dev.pooled, dev.logits, None)) if captioner else None
        # MARVEL pretrains its visual module on image-only documents against their captions; CIEA's
        # extractor stage needs the caption in the document, as that is what it compares patches with.
        self.captions_in_pretraining = captions_in_pretraining
        self.dev_log = DevLog()
        self._states: dict[str, FrozenStates] = {}

    # ---- inputs ---------------------------------------------------------------------------------------------------
    def image_inputs(self, grid: np.ndarray, captions: list[str] | None, rows: np.ndarray):
        return self.model.image_inputs(grid_rows(grid, rows), [captions[i] for i in rows] if captions else None)

    def document_inputs(self, rows: np.ndarray):
        """Rows of the training table: images and texts go to different input builders."""
        n = self.table.n_images
        images, texts = rows[rows < n], rows[rows >= n]
        if len(texts) == 0:
            return self.image_inputs(self.table.grid, self.captions, images)
        if len(images) == 0:
            return self.model.text_inputs([self.table.texts[i - n] for i in texts])
        raise ValueError("build image and text documents in separate batches")

    # ---- dev ------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def dev_score(self, tag: str, layers: int | None = None, eligible: bool = True) -> float:
        """Dev MRR@10 of the model as it is, into the history; kept as the best state if ``eligible``."""
        self.model.eval()
        queries = torch.cat(
            [self.model.embed_texts(self.dev.queries[i : i + 128]) for i in range(0, len(self.dev.queries), 128)]
        )
        if layers is None:
            docs = torch.cat(
                [
                    self.model.embed(*self.image_inputs(self.dev.grid, self.dev_captions, rows))
                    for rows in np.array_split(np.arange(len(self.dev.grid)), max(1, len(self.dev.grid) // 64))
                ]
            )
        else:
            docs = self.embed_states(self.states("dev", layers), layers)
        score = mrr_at_10(docs.numpy(), self.dev.doc_ids, queries.numpy(), self.dev.qids, self.dev.qrels)
        self.model.train()
        self.dev_log.record(tag, score, self.model, eligible)
        return score

    @property
    def history(self) -> list[dict]:
        return self.dev_log.history

    @property
    def best(self):
        return self.dev_log.best

    # ---- cached states ---------------------------------------------------------------------------------------------
    def states(self, name: str, layers: int) -> FrozenStates:
        """States below ``layers`` of: "docs" (training table), "queries", "dev" (dev images)."""
        key = f"{name}@{layers}"
        if key not in self._states:
            bar = f"layer-{layers} states: {name}"
            if name == "docs":
                images = self._image_states(self.table.grid, self.captions, layers, bar)
                self._states[key] = images.concat(self.text_states(self.table.texts, layers, bar))
            elif name == "queries":
                self._states[key] = self.text_states(self.table.queries, layers, bar)
            elif name == "dev":
                self._states[key] = self._image_states(self.dev.grid, self.dev_captions, layers, bar)
            else:
                raise KeyError(name)
        return self._states[key]

    def _image_states(self, grid: np.ndarray, captions: list[str] | None, layers: int, bar) -> FrozenStates:
        return lower_states(
            self.model, lambda rows: self.image_inputs(grid, captions, rows), len(grid), layers, progress=bar
        )

    def text_states(self, texts: list[str], layers: int, bar=None) -> FrozenStates:
        m = self.model
        lengths = [
            len(ids) for ids in m.tokenizer(texts, truncation=True, max_length=m.config.max_text_length)["input_ids"]
        ]
        return lower_states(
            m, lambda rows: m.text_inputs([texts[i] for i in rows]), len(texts), layers, progress=bar, lengths=lengths
        )

    @torch.no_grad()
    def embed_states(self, states: FrozenStates, layers: int, batch_size: int = 128) -> torch.Tensor:
        self.model.eval()
        parts = [
            self.model.upper(*states.take(np.arange(i, min(len(states), i + batch_size))), layers)
            for i in range(0, len(states), batch_size)
        ]
        self.model.train()
        return torch.cat(parts)

    # ---- freezing ---------------------------------------------------------------------------------------------------
    def _trainable(self, params) -> list[torch.nn.Parameter]:
        wanted = {id(p) for p in params}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in wanted)
        return [p for p in self.model.parameters() if p.requires_grad]

    def _steps(self, n: int, epochs: float) -> int:
        return max(1, math.ceil(epochs * n / self.settings.batch_size))

    def _batches(self, rows: np.ndarray, steps: int):
        done = 0
        while done < steps:
            order = self.rng.permutation(rows)
            for start in range(0, len(order) - 1, self.settings.batch_size):
                batch = order[start : start + self.settings.batch_size]
                if len(batch) > 1 and done < steps:
                    done += 1
                    yield batch

    # ---- stage 1 ----------------------------------------------------------------------------------------------------
    def pretrain_visual(self, tag: str = "1-visual") -> None:
        """Image-only document vs caption with the language model frozen; the query side is therefore
        fixed and embedded once."""
        m, s = self.model, self.settings
        words = [p for p in (m.visual.words, m.markers, m.logit_scale) if p is not None]
        extractor = list(m.extractor.parameters()) if m.extractor is not None else []
        self._trainable([*m.visual.linear.parameters(), *words, *extractor])
        groups = [
            {"params": list(m.visual.linear.parameters()), "lr": s.visual_lr},
            {"params": words, "lr": s.word_lr},
            {"params": extractor, "lr": s.extractor_lr},
        ]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01)
        examples = self.table.image_examples()
        with torch.no_grad():
            m.eval()
            queries = torch.cat(
                [
                    m.embed_texts([self.table.queries[i] for i in examples[j : j + 128]])
                    for j in range(0, len(examples), 128)
                ]
            )
        fixed = dict(zip(examples.tolist(), queries))
        steps = self._steps(len(examples), s.visual_epochs)
        schedule = cosine_with_warmup(optimizer, steps)
        m.train()
        m.lm.eval()  # frozen: no dropout noise on a fixed function
        captions = self.captions if self.captions_in_pretraining else None

        def loss_of(batch: np.ndarray) -> torch.Tensor:
            docs = m.embed(*self.image_inputs(self.table.grid, captions, self.table.positives[batch]))
            q = torch.stack([fixed[int(i)] for i in batch])
            loss = info_nce(q, docs, m.scale(), [self.table.groups[i] for i in batch], symmetric=True)
            return loss if self.auxiliary is None else loss + self.auxiliary.visual_loss(self, batch)

        batches = self._batches(examples, steps)
        train_steps(batches, loss_of, optimizer, schedule, desc=f"stage {tag}", total=steps, bfloat16=s.bfloat16)
        self._states.clear()  # the visual module moved: any cached states are stale
        # The language-model stages need the dev states at the frozen layer anyway: score from them.
        language_follows = self.settings.dpr_epochs > 0 or self.settings.ance_epochs > 0
        self.dev_score(tag, layers=self.frozen_layers() if language_follows else None)

    # ---- stages 2 and 4 ---------------------------------------------------------------------------------------------
    def frozen_layers(self) -> int:
        return self.model.num_layers - self.settings.trainable_layers

    def train_language(self, epochs: float, negatives: tuple[np.ndarray, np.ndarray] | None, tag: str) -> None:
        m, s, k = self.model, self.settings, self.frozen_layers()
        joint = s.extractor_in_language and m.extractor is not None
        params = [p for _, p in m.lm.upper_parameters(k)] + [m.logit_scale]
        extractor = list(m.extractor.parameters()) if joint else []
        self._trainable([*params, *extractor])
        groups = [{"params": params, "lr": s.lm_lr}, {"params": extractor, "lr": s.extractor_lr}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=s.weight_decay)
        docs, queries = self.states("docs", k), self.states("queries", k)
        if self.auxiliary is not None:
            self.auxiliary.prepare_language(self, k)
        allowed = self.table.group_positives()
        examples = np.arange(len(self.table.queries))
        steps = self._steps(len(examples), epochs)
        schedule = cosine_with_warmup(optimizer, steps)
        m.train()

        def loss_of(batch: np.ndarray) -> torch.Tensor:
            columns = self.table.positives[batch]
            if negatives is not None:
                mined = np.concatenate([negatives[0][batch], negatives[1][batch]])
                columns = np.concatenate([columns, mined[mined >= 0]])
            q = m.upper(*queries.take(batch), k)
            d = self._full_pass_images(columns, docs, k) if joint else m.upper(*docs.take(columns), k)
            loss = masked_contrastive(q, d, m.scale(), columns, [allowed[i] for i in batch])
            return loss if self.auxiliary is None else loss + self.auxiliary.language_loss(self, batch, k)

        batches = self._batches(examples, steps)
        train_steps(batches, loss_of, optimizer, schedule, desc=f"stage {tag}", total=steps, bfloat16=s.bfloat16)
        if joint:
            self._states.clear()  # every cached image state holds the extractor as it was
        self.dev_score(tag, layers=None if joint else k)

    def _full_pass_images(self, columns: np.ndarray, docs: FrozenStates, layers: int) -> torch.Tensor:
        """Embeddings of the table rows ``columns`` in order: image documents through the whole model (so the
        extractor gets gradients), text documents from their cached states."""
        m, is_image = self.model, columns < self.table.n_images
        parts = [m.embed(*self.document_inputs(columns[is_image]))]
        if (~is_image).any():
            parts.append(m.upper(*docs.take(columns[~is_image]), layers))
        order = np.concatenate([np.flatnonzero(is_image), np.flatnonzero(~is_image)])
        return torch.cat(parts)[torch.from_numpy(np.argsort(order))]

    # ---- stage 3 ----------------------------------------------------------------------------------------------------
    def mine(self) -> tuple[np.ndarray, np.ndarray]:
        """One image and one text negative per query from the model's own top ``mining_depth``."""
        k = self.frozen_layers()
        docs = self.embed_states(self.states("docs", k), k).numpy()
        queries = self.embed_states(self.states("queries", k), k).numpy()
        images, texts = mine_hard_negatives(
            queries,
            docs,
            self.table.doc_is_image,
            self.table.positives,
            self.table.group_positives(),
            self.rng,
            depth=self.settings.mining_depth,
        )
        log.info("mined negatives: %d image, %d text", int((images >= 0).sum()), int((texts >= 0).sum()))
        return images, texts

    def run(self, score_start: bool = False) -> None:
        """The stages whose epochs are > 0, each continuing from the best state on dev so far.

        ``score_start`` puts the untrained start's dev score in the history, for reference only: a method
        that fine-tunes another (CIEA from MARVEL) is served in a state its own training produced, even
        where the start scored higher on dev; else it would be the other method under its name."""
        if score_start:
            self.dev_score("0-start", eligible=False)
        if self.settings.visual_epochs > 0:
            self.pretrain_visual()
            if self.best.tag != "1-visual":  # an earlier state wins: states cached from this one are stale
                self._states.clear()
            self.best.restore(self.model)
        if self.settings.dpr_epochs > 0:
            self.train_language(self.settings.dpr_epochs, None, "2-dpr")
            self.best.restore(self.model)
        if self.settings.ance_epochs > 0:
            negatives = self.mine()
            self.train_language(self.settings.ance_epochs, negatives, "4-ance")
        self.best.restore(self.model)
