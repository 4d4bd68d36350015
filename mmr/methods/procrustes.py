"""Procrustes / least squares: a fixed linear map between frozen text and image embedding spaces.

Choi et al., "Is Cross-modal Information Retrieval Possible without Training?" (ECIR 2023) align a
frozen text encoder (BERT) with a frozen CNN's penultimate layer by a closed-form map: least squares
W = pinv(X) Y, or orthogonal Procrustes W = U V^T from SVD(X^T Y) once both sides have the same size.
Here the text side is the frozen text backbone's sentence embeddings and the image side the frozen vision backbone's
pooled features, reduced by PCA (fitted on training images only) where the dimensions must agree.

Every variant collapses to one affine map per modality followed by L2 normalisation, which is what
``LinearMapper`` stores; ``mmr.methods.gmlp`` starts from it and tunes it contrastively.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from mmr.config import Settings
from mmr.device import serving_device
from mmr.encoders import TextEncoder, l2_normalise
from mmr.encoders.base import ImageFeatures
from mmr.encoders.registry import STAND_INS
from mmr.progress import ProgressBar
from mmr.retrievers.base import Resources
from mmr.retrievers.trained import TrainedDenseRetriever
from mmr.training.common import Manifest, seed_everything
from mmr.training.data import DevSet, TrainingData, load_dev_set, load_training_data, mrr_at_10
from mmr.training.stack import DevLog

log = logging.getLogger(__name__)

NAME = "procrustes"
WEIGHTS, CONFIG = "mapper.safetensors", "config.json"
# A saved mapper's kind -> its class, as data: gmlp.py builds on this module, so naming its class here keeps the
# imports one-way (this module never imports gmlp).
MAPPER_KINDS = {"linear": "mmr.methods.procrustes:LinearMapper", "gmlp": "mmr.methods.gmlp:GatedMapper"}
Direction = Literal["image->text", "text->image"]


# --- closed forms ---------------------------------------------------------------------------------


def least_squares_map(x: np.ndarray, y: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """W minimising |XW - Y|^2 + ridge * mean_eig * |W|^2; ridge 0 is pinv(X) Y.

    The ridge is relative to the mean eigenvalue of X^T X so one setting means the same amount of
    shrinkage whatever the feature scale.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if ridge == 0:
        return (np.linalg.pinv(x) @ y).astype(np.float32)
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    return np.linalg.solve(gram, x.T @ y).astype(np.float32)


def orthogonal_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The rotation W (W^T W = I) minimising |XW - Y|: U V^T from SVD(X^T Y). Needs equal widths."""
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"orthogonal Procrustes needs equal dimensions, got {x.shape[1]} and {y.shape[1]}")
    u, _, vt = np.linalg.svd(np.asarray(x, np.float64).T @ np.asarray(y, np.float64))
    return (u @ vt).astype(np.float32)


@dataclass(frozen=True)
class PcaBasis:
    """Principal directions of centred rows: ``project`` keeps the top ``k`` (optionally whitened)."""

    mean: np.ndarray  # (d,)
    vectors: np.ndarray  # (d, d) columns by decreasing variance
    variances: np.ndarray  # (d,)

    @classmethod
    def fit(cls, x: np.ndarray) -> PcaBasis:
        # Eigen-decomposing the (d, d) covariance is much cheaper than an SVD of the (n, d) data.
        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        variances, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False, bias=True))
        order = np.argsort(variances)[::-1]
        return cls(mean.astype(np.float32), vectors[:, order], np.maximum(variances[order], 1e-12))

    def project(self, k: int, whiten: bool = False) -> np.ndarray:
        """(d, k); with ``whiten`` every direction gets unit variance, so none dominates a fit."""
        basis = self.vectors[:, :k] / (np.sqrt(self.variances[:k]) if whiten else 1.0)
        return basis.astype(np.float32)


# --- the model --------------------------------------------------------------------------------------


class AffineSide(torch.nn.Module):
    """x -> (normalise(x) - mean) @ weight: one modality's way into the shared space."""

    def __init__(self, mean: np.ndarray, weight: np.ndarray, trainable: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.weight = torch.nn.Parameter(torch.as_tensor(weight, dtype=torch.float32), requires_grad=trainable)

    @classmethod
    def blank(cls, d_in: int, d_out: int) -> AffineSide:
        return cls(np.zeros(d_in, np.float32), np.zeros((d_in, d_out), np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.normalize(x, dim=-1) - self.mean) @ self.weight


class LinearMapper(torch.nn.Module):
    """One affine side per modality; ``image`` reads pooled features (the grid is not needed)."""

    needs_grid = False

    def __init__(self, text: AffineSide, image: AffineSide):
        super().__init__()
        self.text, self.image = text, image

    @property
    def dim(self) -> int:
        return int(self.text.weight.shape[1])

    def encode_text(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(vectors), dim=-1)

    def encode_image(self, pooled: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.image(pooled), dim=-1)

    def config(self) -> dict:
        return {
            "kind": "linear",
            "text_dims": list(self.text.weight.shape),
            "image_dims": list(self.image.weight.shape),
        }

    @classmethod
    def from_config(cls, config: dict, weights: dict[str, torch.Tensor] | None = None) -> LinearMapper:
        return cls(AffineSide.blank(*config["text_dims"]), AffineSide.blank(*config["image_dims"]))


class MappedSpaceModel:
    """``DualEncoderModel`` over frozen text and vision backbone features and a trained mapper."""

    def __init__(self, text_encoder: TextEncoder, mapper: torch.nn.Module, batch_size: int = 512, device: str = "cpu"):
        self.text_encoder, self.mapper, self.batch_size = text_encoder, mapper.to(device).eval(), batch_size
        self.needs_grid, self.dim, self.device = bool(mapper.needs_grid), int(mapper.dim), device

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        vectors = torch.from_numpy(self.text_encoder.encode(list(texts), progress=len(texts) > 256 and "texts"))
        return self.mapper.encode_text(vectors.to(self.device)).cpu().numpy().astype(np.float32)

    @torch.inference_mode()
    def encode_images(self, features: ImageFeatures) -> np.ndarray:
        parts = []
        for start in range(0, len(features.pooled), self.batch_size):
            pooled = torch.from_numpy(np.asarray(features.pooled[start : start + self.batch_size], np.float32))
            grid = None
            if self.needs_grid:
                grid = torch.from_numpy(np.asarray(features.grid[start : start + self.batch_size], np.float32))
                grid = grid.to(self.device)
            parts.append(self.mapper.encode_image(pooled.to(self.device), grid).cpu().numpy())
        return l2_normalise(np.concatenate(parts)) if parts else np.zeros((0, self.dim), np.float32)


def save_mapper(mapper: torch.nn.Module, folder: Path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in mapper.state_dict().items()}, str(folder / WEIGHTS))
    (folder / CONFIG).write_text(json.dumps({**mapper.config(), **(extra or {})}, indent=2))


def load_mapper(folder: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    config = json.loads((folder / CONFIG).read_text())
    weights = load_file(str(folder / WEIGHTS))
    module_name, class_name = MAPPER_KINDS[config["kind"]].split(":")
    mapper = getattr(importlib.import_module(module_name), class_name).from_config(config, weights)
    mapper.load_state_dict(weights)
    return mapper


class ProcrustesRetriever(TrainedDenseRetriever):
    name = NAME

    @classmethod
    def load_model(cls, folder: Path, resources: Resources) -> MappedSpaceModel:
        device = serving_device(resources)
        return MappedSpaceModel(resources.encoder(STAND_INS.text), load_mapper(folder), device=device)


# --- fitting on the training pairs --------------------------------------------------------------------


@dataclass(frozen=True)
class MapVariant:
    solver: Literal["least-squares", "orthogonal"]
    direction: Direction
    pca: bool = True  # image side reduced to the text width (the orthogonal solver needs it)
    whiten: bool = False  # PCA directions scaled to unit variance before the fit
    ridge: float = 0.0

    @property
    def tag(self) -> str:
        parts = [self.solver, self.direction, "pca" if self.pca else "full"]
        parts += ["whiten"] * self.whiten + ([f"ridge={self.ridge:g}"] if self.solver == "least-squares" else [])
        return " ".join(parts)


@dataclass
class PairedFeatures:
    """Frozen embeddings of the training examples: what the closed forms and the tuning read."""

    query_vectors: np.ndarray  # (n_examples, text dim) the text backbone's, L2-normalised
    image_pooled: np.ndarray  # (n_images, image dim) the vision backbone's pooled, as cached
    image_rows: np.ndarray  # (n_examples,) row of the positive in image_pooled, -1 for a text positive
    text_doc_vectors: np.ndarray  # (n_text_docs, text dim) the text documents'
    text_rows: np.ndarray  # (n_examples,) row of the positive in text_doc_vectors, -1 for an image positive
    groups: list[str]

    @property
    def image_pairs(self) -> np.ndarray:
        return np.flatnonzero(self.image_rows >= 0)


def frozen_text_vectors(resources: Resources, texts: Sequence[str], progress: str) -> np.ndarray:
    """Frozen text backbone embeddings (large batches come from the shared on-disk cache, encoders/cache.py)."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, resources.encoder(STAND_INS.text).dim), np.float32)
    return resources.encoder(STAND_INS.text).encode(texts, progress=progress)


def paired_features(data: TrainingData, resources: Resources) -> PairedFeatures:
    image_row = {doc_id: i for i, doc_id in enumerate(data.image_ids)}
    text_row = {doc_id: i for i, doc_id in enumerate(data.text_ids)}
    return PairedFeatures(
        query_vectors=frozen_text_vectors(resources, [e.query for e in data.examples], "training queries"),
        image_pooled=np.asarray(data.image_features(resources).pooled, np.float32),
        image_rows=np.array([image_row.get(e.positive_id, -1) for e in data.examples]),
        text_doc_vectors=frozen_text_vectors(resources, [data.documents[i].text for i in data.text_ids], "text docs"),
        text_rows=np.array([text_row.get(e.positive_id, -1) for e in data.examples]),
        groups=[e.group for e in data.examples],
    )


def fit_linear_mapper(pairs: PairedFeatures, variant: MapVariant, basis: PcaBasis | None = None) -> LinearMapper:
    """Closed-form map between the centred frozen spaces, fitted on the image-caption pairs only.
    ``basis`` (PCA of the normalised training images) may be passed in to share it between fits."""
    images = l2_normalise(pairs.image_pooled)
    basis = basis or PcaBasis.fit(images)
    text_mean = pairs.query_vectors.mean(0)
    text_dim = pairs.query_vectors.shape[1]
    projection = basis.project(text_dim, variant.whiten) if variant.pca else np.eye(images.shape[1], dtype=np.float32)
    rows = pairs.image_pairs
    image_side = l2_normalise((images[pairs.image_rows[rows]] - basis.mean) @ projection)
    text_side = l2_normalise(pairs.query_vectors[rows] - text_mean)
    source, target = (image_side, text_side) if variant.direction == "image->text" else (text_side, image_side)
    if variant.solver == "orthogonal":
        if not variant.pca:
            raise ValueError("the orthogonal solver needs the PCA-reduced image side")
        weight = orthogonal_map(source, target)
    else:
        weight = least_squares_map(source, target, variant.ridge)
    if variant.direction == "image->text":
        return LinearMapper(
            AffineSide(text_mean, np.eye(text_dim, dtype=np.float32)), AffineSide(basis.mean, projection @ weight)
        )
    return LinearMapper(AffineSide(text_mean, weight), AffineSide(basis.mean, projection))


# --- dev selection ------------------------------------------------------------------------------------


@dataclass
class DevFeatures:
    """Dev queries and the stamps images, embedded by the frozen encoders once per run."""

    query_vectors: np.ndarray
    qids: list[str]
    images: ImageFeatures
    doc_ids: list[str]
    qrels: dict[str, dict[str, int]]


def dev_features(dev: DevSet, resources: Resources, keep_grid: bool = False) -> DevFeatures:

    qids = list(dev.benchmark.queries)
    docs = dev.image_documents
    return DevFeatures(
        query_vectors=frozen_text_vectors(resources, [dev.benchmark.queries[q] for q in qids], "dev queries"),
        qids=qids,
        images=resources.image_features(docs, STAND_INS.image, keep_grid=keep_grid),
        doc_ids=[d.id for d in docs],
        qrels=dev.benchmark.qrels,
    )


@torch.inference_mode()
def dev_mrr(mapper: torch.nn.Module, dev: DevFeatures, batch_size: int = 256) -> float:
    queries = mapper.encode_text(torch.from_numpy(dev.query_vectors)).numpy()
    docs = []
    for start in range(0, len(dev.doc_ids), batch_size):
        pooled = torch.from_numpy(np.asarray(dev.images.pooled[start : start + batch_size], np.float32))
        grid = None
        if getattr(mapper, "needs_grid", False):
            grid = torch.from_numpy(np.asarray(dev.images.grid[start : start + batch_size], np.float32))
        docs.append(mapper.encode_image(pooled, grid).numpy())
    return mrr_at_10(np.concatenate(docs), dev.doc_ids, queries, dev.qids, dev.qrels)


SEARCH_SPACE: tuple[MapVariant, ...] = tuple(
    [MapVariant("orthogonal", d, pca=True, whiten=w) for d in ("image->text", "text->image") for w in (False, True)]
    + [
        MapVariant("least-squares", d, pca=p, ridge=r)
        for d in ("image->text", "text->image")
        for p in (True, False)
        for r in (0.0, 0.1, 1.0)
    ]
)


def select_variant(
    pairs: PairedFeatures, dev: DevFeatures, variants: Sequence[MapVariant] = SEARCH_SPACE
) -> tuple[MapVariant, LinearMapper, list[dict]]:
    """Fit every variant in closed form and keep the one with the best dev MRR@10."""
    dev_log, fitted = DevLog(), {}
    basis = PcaBasis.fit(l2_normalise(pairs.image_pooled))
    for variant in ProgressBar(variants, desc="closed-form variants", unit="fit"):
        fitted[variant.tag] = variant, fit_linear_mapper(pairs, variant, basis)
        # each variant is its own mapper (its own shape): kept whole, not as a state to restore
        dev_log.record(variant.tag, dev_mrr(fitted[variant.tag][1], dev), fitted[variant.tag][1], stage="closed-form")
    variant, mapper = fitted[dev_log.best.tag]
    return variant, mapper, dev_log.history


def train(settings: Settings, resources: Resources, seed: int) -> Manifest:
    """Fit every closed-form variant on the training pairs and keep the best on dev (no gradient steps)."""
    torch.set_num_threads(settings.training_threads)
    seed_everything(seed)
    start = time.time()
    data = load_training_data(settings, resources)
    pairs = paired_features(data, resources)
    dev = dev_features(load_dev_set(settings), resources)
    variant, mapper, history = select_variant(pairs, dev)
    score = dev_mrr(mapper, dev)
    folder = settings.model_dir(NAME)
    save_mapper(mapper, folder, {"variant": asdict(variant)})
    manifest = Manifest(
        NAME,
        data.fingerprint,
        score,
        seed,
        time.time() - start,
        config={"variant": asdict(variant), "tag": variant.tag, "image_pairs": len(pairs.image_pairs)},
        history=history,
    )
    manifest.save(folder)
    log.info("%s: chose %s, dev MRR@10 %.4f", NAME, variant.tag, score)
    return manifest
