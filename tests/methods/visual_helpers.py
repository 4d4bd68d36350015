"""Tiny stand-ins shared by the MARVEL and CIEA tests: a BERT (or T5) the test creates, random grids, a small table."""

import numpy as np
import torch

from mmr.methods.visual_states import DevTable, TrainingTable
from mmr.methods.visual_tokens import VisualTokenConfig, VisualTokenEncoder, load_language_model
from tests.tiny_bert import save_tiny_bert
from tests.tiny_t5 import save_tiny_t5

PATCHES, CHANNELS = 4, 8
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "a",
    "red",
    "blue",
    "flower",
    "cat",
    "dog",
    "bird",
    "tench",
    "goldfish",
    ",",
    "green",
    "house",
    "tree",
]


def make_tiny_bert(tmp_path_factory):
    """A 2-layer, 16-wide BERT and its tokenizer, saved where ``from_pretrained`` can load them."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), VOCAB)


def make_tiny_t5(tmp_path_factory):
    """A 2-block, 16-wide T5 (T5-ANCE's architecture) over the same words."""
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5"), [w for w in VOCAB if not w.startswith("[")])


def make_encoder(folder, seed=0, extractor=None) -> VisualTokenEncoder:
    torch.manual_seed(seed)
    return VisualTokenEncoder(
        load_language_model(folder), VisualTokenConfig(grid_dim=CHANNELS, caption_length=8), extractor
    )


def grids(n, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, PATCHES, CHANNELS)).astype(np.float16)


def tiny_tables(n_images=6):
    words = ["red flower", "blue cat", "a dog", "green bird", "red house", "blue tree"]
    texts = ["a red cat", "a blue dog", "a green tree"]
    queries = words[:n_images] + ["cat", "dog", "tree"]
    table = TrainingTable(
        queries=queries,
        groups=queries[:n_images] + ["wn:cat", "wn:dog", "wn:tree"],
        positives=np.arange(n_images + 3),
        grid=grids(n_images),
        logits=np.zeros((n_images, 1000)),
        texts=texts,
        doc_ids=[f"img{i}" for i in range(n_images)] + ["t0", "t1", "t2"],
    )
    dev = DevTable(
        grid=grids(4, seed=1),
        logits=np.zeros((4, 1000)),
        doc_ids=["d0", "d1", "d2", "d3"],
        qids=["q0", "q1"],
        queries=["red flower", "a dog"],
        qrels={"q0": {"d0": 1}, "q1": {"d2": 1}},
    )
    return table, dev


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(before, params) -> list[bool]:
    return [not torch.equal(b, p.detach()) for b, p in zip(before, params)]
