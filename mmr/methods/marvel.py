"""MARVEL (OpenMatch/MARVEL): an image enters the text encoder as visual tokens, one encoder for all.

Document encoder: ``[CLS] <im_start> v1..vN <im_end> caption [SEP]`` through a trainable copy of the text
backbone, where v_i is a frozen vision-backbone grid cell through ``Linear(grid_dim -> hidden)``
(visual_tokens.py).
A stamp's description is its query, so an image document has no caption of its own: it borrows the
captions of the three training images that look most like it (visual_captions.py), as MARVEL's WebQA
documents carry theirs. Text documents and queries go through the same encoder without visual tokens.

Training follows MARVEL's four stages (visual_training.py): visual-module pretraining with the
language model frozen (image-only documents against their captions, as the paper's), DPR in-batch
training with vision frozen, mining with the model's own index, ANCE with one image and one text hard
negative per query. Departures for the CPU budget: the language-model stages train the text backbone's top
layers only, and mean pooling replaces T5's first decoder state (see visual_tokens.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mmr.config import Settings
from mmr.device import serving_device
from mmr.encoders.registry import STAND_INS, checkpoint_path
from mmr.methods.visual_captions import (
    BORROWED_CAPTIONS,
    SAVED_KEY,
    borrowed_captioner,
    saved_captioner,
    table_caption_pool,
)
from mmr.methods.visual_states import load_tables
from mmr.methods.visual_tokens import (
    VisualTokenConfig,
    VisualTokenDualEncoder,
    VisualTokenEncoder,
    load_language_model,
    load_saved,
)
from mmr.methods.visual_training import MarvelStages, StageTrainer
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import TrainedDenseRetriever
from mmr.training.common import Manifest, seed_everything
from mmr.training.variants import DataOptions, GridDataOptions

log = logging.getLogger(__name__)

NAME = "marvel"
STAGES = MarvelStages(
    batch_size=64,  # MARVEL's
    visual_lr=3e-5,
    word_lr=2e-4,
    visual_epochs=1.0,  # one epoch of the visual module alone helped dev; one learning rate for all wrecked it
    lm_lr=3e-5,
    dpr_epochs=0.25,  # longer DPR and ANCE stages moved dev by no more than noise: kept short
    ance_epochs=0.25,
    trainable_layers=2,
)
# The training data as it is: the stamp repeats that won for dense-inbatch tied here (docs/findings.md).
SERVED_DATA = GridDataOptions(stamp_repeats=1)


class MarvelRetriever(TrainedDenseRetriever):
    name = NAME

    @classmethod
    def load_model(cls, folder: Path, resources: Resources) -> VisualTokenDualEncoder:
        encoder, saved = load_saved(folder)
        device = serving_device(resources)
        return VisualTokenDualEncoder(encoder, captioner=saved_captioner(folder, saved), device=device)


def new_encoder(resources: Resources, path: str | Path | None = None) -> VisualTokenEncoder:
    """A fresh MARVEL encoder around a trainable copy of the text backbone (or the checkpoint at ``path``),
    its visual tokens sized by the vision backbone's grid and, where that backbone has a classifier,
    starting as the soft class words of each grid cell (see VisualModule)."""
    vision = resources.encoder(STAND_INS.image)
    classes = vision.class_head()
    if classes is not None and classes.weight.shape[1] != vision.grid_dim:
        classes = None  # the classifier reads pooled vectors of another size than a cell: it cannot name cells
    lm = load_language_model(path or checkpoint_path(STAND_INS.text))
    config = VisualTokenConfig(grid_dim=vision.grid_dim, class_words=len(classes.names) if classes else 0)
    model = VisualTokenEncoder(lm, config)
    if classes is not None:
        weight, bias = torch.from_numpy(classes.weight), torch.from_numpy(classes.bias)
        model.visual.init_class_words(weight, bias, model.phrase_embeddings(list(classes.names)))
    return model


def train(
    settings: Settings,
    resources: Resources,
    seed: int = 0,
    hp: DataOptions | None = None,
    save: bool = True,
    stages: MarvelStages = STAGES,
) -> Manifest:
    """MARVEL's four stages on the training split, model chosen on dev; writes ``models/marvel`` unless
    ``save`` is False (an exploratory run: the dev history only). ``hp`` changes the training data."""
    started = time.time()
    hp = hp or SERVED_DATA
    torch.set_num_threads(settings.training_threads)
    rng = seed_everything(seed)
    table, dev = load_tables(settings, resources, hp)
    log.info("marvel: %d examples, %d images, %d text documents", len(table.queries), table.n_images, len(table.texts))
    model = new_encoder(resources)
    pool = table_caption_pool(table, resources)
    captioner = borrowed_captioner(pool)
    trainer = StageTrainer(model, table, dev, stages, rng, captioner=captioner, captions_in_pretraining=False)
    trainer.run()
    manifest = Manifest(
        NAME,
        table.fingerprint,
        round(trainer.best.score, 4),
        seed,
        round(time.time() - started, 1),
        config={
            "stages": asdict(stages),
            "model": asdict(model.config),
            "best": trainer.best.tag,
            "text_encoder": STAND_INS.text,
            "image_encoder": STAND_INS.image,
            "data": asdict(hp),
            SAVED_KEY: BORROWED_CAPTIONS,
        },
        history=trainer.history,
    )
    if save:
        folder = resources.settings.model_dir(NAME)
        model.save(folder, extra={"method": NAME, "stages": asdict(stages), SAVED_KEY: BORROWED_CAPTIONS})
        pool.save(folder)
        manifest.save(folder)  # last: its hash keys the indexes built from this model
    return manifest
