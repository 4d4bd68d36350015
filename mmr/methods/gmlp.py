"""The paper's two improvements on the closed-form map: contrastive tuning and a gMLP mapper.

Choi et al. (ECIR 2023) improve the fixed Procrustes / least-squares map first by contrastive
learning and then with a gMLP (Liu et al. 2021, "Pay Attention to MLPs"). Here both start from the
closed-form map chosen on dev (``mmr.methods.procrustes``):

- contrastive tuning: the map's matrices become trainable and are tuned with in-batch InfoNCE over
  the training pairs (mixed modality: WordNet glosses are in-batch documents too);
- gMLP mapper: a residual branch on the image side reads the vision backbone's grid as tokens
  (PCA-reduced with the training images' basis), runs gMLP blocks (channel projections + a spatial
  gating unit that mixes the grid positions), mean-pools and adds a zero-initialised projection to
  the linear map's output, so training starts exactly at the closed form.

Departures: the paper fine-tunes the pretrained encoders contrastively; here they stay frozen (2 CPU
cores) and a linear adapter on the text side (initialised as the closed form's text side) learns
in their place, with the image map and the gMLP branch. The paper does not say what its gMLP mixes;
here the spatial gating mixes grid cells, which is what gMLP's gating does for images. Each stage
keeps its best epoch on dev, and the better of the two stages is saved.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmr.config import Settings
from mmr.device import serving_device
from mmr.encoders import l2_normalise
from mmr.encoders.registry import STAND_INS
from mmr.methods.procrustes import (
    AffineSide,
    DevFeatures,
    LinearMapper,
    MappedSpaceModel,
    PairedFeatures,
    PcaBasis,
    dev_features,
    dev_mrr,
    load_mapper,
    paired_features,
    save_mapper,
    select_variant,
)
from mmr.progress import ProgressBar
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import TrainedDenseRetriever
from mmr.training.common import Manifest, cosine_with_warmup, info_nce, minibatches, seed_everything
from mmr.training.data import load_dev_set, load_training_data
from mmr.training.stack import DevLog, train_steps

log = logging.getLogger(__name__)

NAME = "procrustes-gmlp"


class SpatialGatingUnit(torch.nn.Module):
    """Split channels into (u, v); gate u by a linear mix of v across token positions."""

    def __init__(self, d_ffn: int, n_tokens: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(d_ffn // 2)
        self.spatial = torch.nn.Linear(n_tokens, n_tokens)
        # gMLP's initialisation: near-zero weights and unit bias, so the gate starts as identity
        torch.nn.init.uniform_(self.spatial.weight, -1e-3, 1e-3)
        torch.nn.init.ones_(self.spatial.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)
        v = self.spatial(self.norm(v).transpose(1, 2)).transpose(1, 2)
        return u * v


class GmlpBlock(torch.nn.Module):
    def __init__(self, dim: int, d_ffn: int, n_tokens: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.channel_in = torch.nn.Linear(dim, d_ffn)
        self.gate = SpatialGatingUnit(d_ffn, n_tokens)
        self.channel_out = torch.nn.Linear(d_ffn // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.channel_out(self.gate(F.gelu(self.channel_in(self.norm(x)))))


@dataclass(frozen=True)
class GmlpConfig:
    token_dim: int = 256
    d_ffn: int = 512
    blocks: int = 1


class GatedMapper(torch.nn.Module):
    """A ``LinearMapper`` plus a gMLP branch over grid tokens, added to the image side's output."""

    needs_grid = True

    def __init__(self, linear: LinearMapper, token_side: AffineSide, config: GmlpConfig, grid_tokens: int):
        super().__init__()
        self.linear, self.token_side, self.gmlp_config = linear, token_side, config
        self.grid_tokens = grid_tokens  # the spatial gate mixes positions: its size is the backbone's grid
        self.blocks = torch.nn.Sequential(
            *[GmlpBlock(config.token_dim, config.d_ffn, grid_tokens) for _ in range(config.blocks)]
        )
        self.norm = torch.nn.LayerNorm(config.token_dim)
        self.head = torch.nn.Linear(config.token_dim, linear.dim)
        torch.nn.init.zeros_(self.head.weight)  # the branch starts silent: training starts at the closed form
        torch.nn.init.zeros_(self.head.bias)

    @property
    def dim(self) -> int:
        return self.linear.dim

    def tokens(self, pooled: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Grid cells on the same footing as ``AffineSide`` puts pooled features: pooled is the mean
        of the cells, so dividing the cells by the pooled norm keeps them on the normalised scale."""
        scale = pooled.norm(dim=-1).clamp_min(1e-12)[:, None, None]
        return (grid / scale - self.token_side.mean) @ self.token_side.weight

    def encode_text(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.linear.encode_text(vectors)

    def encode_tokens(self, pooled: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        residual = self.head(self.norm(self.blocks(tokens)).mean(dim=1))
        return F.normalize(self.linear.image(pooled) + residual, dim=-1)

    def encode_image(self, pooled: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        if grid is None:
            raise ValueError("the gMLP mapper reads the image grid; load image features with keep_grid=True")
        return self.encode_tokens(pooled, self.tokens(pooled, grid))

    def config(self) -> dict:
        return {
            **self.linear.config(),
            "kind": "gmlp",
            "token_dims": list(self.token_side.weight.shape),
            "gmlp": asdict(self.gmlp_config),
            "grid_tokens": self.grid_tokens,
        }

    @classmethod
    def from_config(cls, config: dict, weights: dict[str, torch.Tensor]) -> GatedMapper:
        # a mapper saved before the config recorded it: the spatial gate's weight is (tokens, tokens)
        grid_tokens = config.get("grid_tokens") or int(weights["blocks.0.gate.spatial.weight"].shape[0])
        linear, tokens = LinearMapper.from_config(config), AffineSide.blank(*config["token_dims"])
        return cls(linear, tokens, GmlpConfig(**config["gmlp"]), grid_tokens)


def gated_mapper(linear: LinearMapper, image_pooled: np.ndarray, config: GmlpConfig, grid_tokens: int) -> GatedMapper:
    """Wrap a fitted linear map; the token basis is PCA of the training images' pooled features."""
    basis = PcaBasis.fit(l2_normalise(image_pooled))
    return GatedMapper(linear, AffineSide(basis.mean, basis.project(config.token_dim)), config, grid_tokens)


class ProcrustesGmlpRetriever(TrainedDenseRetriever):
    name = NAME

    @classmethod
    def load_model(cls, folder: Path, resources: Resources) -> MappedSpaceModel:
        device = serving_device(resources)
        return MappedSpaceModel(resources.encoder(STAND_INS.text), load_mapper(folder), device=device)


# --- contrastive training -------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneConfig:
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 0.05


def project_training_tokens(
    mapper: GatedMapper, pooled: np.ndarray, grid: np.ndarray, chunk: int = 256
) -> torch.Tensor:
    """The token projection is fixed, so it runs once instead of every epoch."""
    parts = []
    with torch.inference_mode():
        for start in ProgressBar(range(0, len(pooled), chunk), desc="grid tokens", unit="batch"):
            parts.append(
                mapper.tokens(
                    torch.from_numpy(pooled[start : start + chunk]),
                    torch.from_numpy(np.asarray(grid[start : start + chunk], np.float32)),
                )
            )
    return torch.cat(parts)


def batch_documents(
    mapper: torch.nn.Module, pairs: PairedFeatures, batch: np.ndarray, tokens: torch.Tensor | None
) -> torch.Tensor:
    """Embeddings of the batch's positives: images through the image side, glosses through the text side."""
    out = torch.zeros(len(batch), mapper.dim)
    image_at = np.flatnonzero(pairs.image_rows[batch] >= 0)
    text_at = np.flatnonzero(pairs.text_rows[batch] >= 0)
    if len(image_at):
        rows = pairs.image_rows[batch[image_at]]
        pooled = torch.from_numpy(pairs.image_pooled[rows])
        if tokens is None:
            out[image_at] = mapper.encode_image(pooled)
        else:
            out[image_at] = mapper.encode_tokens(pooled, tokens[rows])
    if len(text_at):
        out[text_at] = mapper.encode_text(torch.from_numpy(pairs.text_doc_vectors[pairs.text_rows[batch[text_at]]]))
    return out


def tune(
    mapper: torch.nn.Module,
    pairs: PairedFeatures,
    dev: DevFeatures,
    config: TuneConfig,
    rng: np.random.Generator,
    stage: str,
    tokens: torch.Tensor | None = None,
) -> list[dict]:
    """In-batch InfoNCE from the mapper's current state; keeps the epoch with the best dev MRR@10."""
    params = [p for p in mapper.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(pairs.groups) / config.batch_size)
    schedule = cosine_with_warmup(optimizer, steps)
    dev_log = DevLog()
    dev_log.record(f"{stage} start", dev_mrr(mapper.eval(), dev), mapper, stage=stage, epoch=0)

    def loss_of(batch: np.ndarray) -> torch.Tensor:
        queries = mapper.encode_text(torch.from_numpy(pairs.query_vectors[batch]))
        documents = batch_documents(mapper, pairs, batch, tokens)
        return info_nce(queries, documents, 1 / config.temperature, [pairs.groups[i] for i in batch])

    for epoch in range(1, config.epochs + 1):
        mapper.train()
        batches = list(minibatches(len(pairs.groups), config.batch_size, rng))
        loss = train_steps(batches, loss_of, optimizer, schedule, desc=f"{stage} epoch {epoch}", unit="batch")
        score = dev_mrr(mapper.eval(), dev)
        dev_log.record(f"{stage} epoch {epoch}", score, mapper, stage=stage, epoch=epoch, loss=round(loss, 4))
    dev_log.restore(mapper)
    return dev_log.history


def unfreeze(linear: LinearMapper) -> LinearMapper:
    """Both sides learn: the text side's matrix is a linear adapter on the frozen text backbone, the cheap
    stand-in for the paper's contrastive biasing of the text encoder itself."""
    linear.text.weight.requires_grad_(True)
    linear.image.weight.requires_grad_(True)
    return linear


LINEAR_TUNING = TuneConfig(epochs=4, lr=1e-3)
GMLP_TUNING = TuneConfig(epochs=3, lr=1e-3)
GMLP = GmlpConfig(token_dim=128, d_ffn=256, blocks=1)


def train(settings: Settings, resources: Resources, seed: int) -> Manifest:
    """Closed form (chosen on dev) -> contrastive tuning -> gMLP branch; keeps the best stage on dev."""
    torch.set_num_threads(settings.training_threads)
    rng = seed_everything(seed)
    start = time.time()
    data = load_training_data(settings, resources)
    pairs = paired_features(data, resources)
    dev = dev_features(load_dev_set(settings), resources, keep_grid=True)
    variant, linear, history = select_variant(pairs, dev)
    history += tune(unfreeze(linear), pairs, dev, LINEAR_TUNING, rng, "contrastive")
    candidates = [("contrastive", dev_mrr(linear, dev), linear)]
    grid = data.image_features(resources, keep_grid=True).grid
    gated = gated_mapper(copy.deepcopy(linear), pairs.image_pooled, GMLP, grid_tokens=grid.shape[1])
    tokens = project_training_tokens(gated, pairs.image_pooled, grid)
    history += tune(gated, pairs, dev, GMLP_TUNING, rng, "gmlp", tokens)
    candidates.append(("gmlp", dev_mrr(gated, dev), gated))
    stage, score, mapper = max(candidates, key=lambda candidate: candidate[1])
    folder = settings.model_dir(NAME)
    save_mapper(mapper, folder, {"variant": asdict(variant), "stage": stage})
    config = {
        "variant": asdict(variant),
        "tag": variant.tag,
        "stage": stage,
        "linear_tuning": asdict(LINEAR_TUNING),
        "gmlp_tuning": asdict(GMLP_TUNING),
        "gmlp": asdict(GMLP),
        "image_pairs": len(pairs.image_pairs),
    }
    manifest = Manifest(NAME, data.fingerprint, score, seed, time.time() - start, config=config, history=history)
    manifest.save(folder)
    log.info("%s: kept the %s stage, dev MRR@10 %.4f", NAME, stage, score)
    return manifest
