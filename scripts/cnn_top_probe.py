"""Is the frozen image CNN the cap? The in-batch image head, with and without EfficientNet's top blocks trained.

Every trained retriever here sees pixels through a frozen EfficientNet-Lite0, and the README puts the
ceiling partly down to that: an ImageNet photo CNN, never adapted to clip art. This script tests that
claim directly. It trains the served ``dense-inbatch`` model's head phase (frozen MiniLM text side; image
= verbalisation + a zero-initialised MLP over the pooled CNN feature; in-batch InfoNCE on the served
training data's image pairs, stamp pairs five times per epoch; the WordNet text pairs are left out) in
variants that differ only in how many of the CNN's last MBConv blocks, and its 1x1 head convolution,
train along with the head (at their own learning rate, ``--lr-cnn``; batch-norm statistics stay the
pretrained ones). The activations below the trained
blocks are computed once and cached. The verbalisation keeps the frozen CNN's class names: only the
pixel path adapts.

Scored after every epoch on the stamps dev queries (images setting); never test. Dev only, nothing
saved. The first run renders the images and caches their activations (~11 minutes; 374 MB under
``index_store/features/cnn-top-probe`` for the default block counts, safe to delete); the default run
then took 32 minutes, on 2 cores shared with another training job:

    PYTHONPATH=. .venv/bin/python scripts/cnn_top_probe.py            # 0, 1 and 5 blocks trained
    PYTHONPATH=. .venv/bin/python scripts/cnn_top_probe.py --blocks 1 --lr-cnn 3e-4   # ~2 minutes, once cached
"""

from __future__ import annotations

import argparse
import copy
import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mmr.config import Settings
from mmr.corpus.images import load_image
from mmr.corpus.splits import load_benchmark
from mmr.encoders.efficientnet import preprocess
from mmr.encoders.registry import STAND_INS, load_encoder
from mmr.methods.univl_dr import MODEL as SERVED
from mmr.methods.univl_model import MAX_LOGIT_SCALE, image_head
from mmr.retrievers.base import Resources
from mmr.training.common import cosine_with_warmup, minibatches, seed_everything
from mmr.training.data import load_dev_set, load_training_data, mrr_at_10
from mmr.training.stack import masked_contrastive
from mmr.training.variants import DataOptions

DEFAULT_BLOCKS = (0, 1, 5)


class PixelPath(nn.Module):
    """EfficientNet's last ``blocks`` MBConv blocks and head conv (trainable), pooled, then the served head."""

    def __init__(self, cnn: nn.Module, blocks: int, dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(list(cnn._blocks[len(cnn._blocks) - blocks :])))
        self.conv_head, self.bn1, self.swish = copy.deepcopy(cnn._conv_head), copy.deepcopy(cnn._bn1), cnn._swish
        self.proj = image_head(SERVED, dim, zero_output=True)  # the served head, from the verbalisation alone
        self.log_scale = nn.Parameter(torch.tensor(np.log(SERVED.init_scale), dtype=torch.float32))

    def cnn_parameters(self) -> list[nn.Parameter]:
        return [*self.blocks.parameters(), *self.conv_head.parameters(), *self.bn1.parameters()]

    def forward(self, below: torch.Tensor, verbal: torch.Tensor) -> torch.Tensor:
        x = below
        for block in self.blocks:
            x = block(x)  # no drop-connect: the pretrained blocks as they infer
        pooled = self.swish(self.bn1(self.conv_head(x))).mean(dim=(2, 3))
        return F.normalize(self.proj(pooled) + verbal, dim=-1)


def activations_below(
    settings: Settings, cnn: nn.Module, docs: list, block_counts: list[int], label: str
) -> dict[int, torch.Tensor]:
    """Each image's activation map entering the last ``n`` blocks, for every ``n`` asked for (float16).

    The frozen part runs once per image for all of them, and the result is cached on disk (keyed by the
    documents and the counts), as rendering the training SVGs dominates the cost.
    """
    digest = hashlib.sha256(repr(sorted(block_counts)).encode())
    for doc in docs:
        digest.update(f"{doc.id}\0{doc.image_path}\n".encode())
    path = settings.features_dir / "cnn-top-probe" / f"{digest.hexdigest()[:16]}.pt"
    if path.exists():
        return torch.load(path)
    stops = {len(cnn._blocks) - n: n for n in block_counts}
    parts: dict[int, list[torch.Tensor]] = {n: [] for n in block_counts}
    with torch.inference_mode():
        for start in tqdm(range(0, len(docs), 16), desc=label, unit="batch"):
            x = preprocess([load_image(d.image_path) for d in docs[start : start + 16]], 224)
            x = cnn._swish(cnn._bn0(cnn._conv_stem(x)))
            for index, block in enumerate(cnn._blocks):
                if index in stops:
                    parts[stops[index]].append(x.half())
                x = block(x)
            if len(cnn._blocks) in stops:
                parts[0].append(x.half())
    result = {n: torch.cat(chunks) for n, chunks in parts.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(result, path)
    return result


def encode_in_chunks(model: PixelPath, below: torch.Tensor, verbal: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        rows = [model(below[i : i + 64].float(), verbal[i : i + 64]) for i in range(0, len(below), 64)]
    return torch.cat(rows).numpy()


def run_variant(args, blocks: int, data: dict) -> list[tuple[int, float]]:
    """(epoch, dev MRR@10) after every epoch, epoch 0 being the untrained start."""
    rng = seed_everything(args.seed)
    model = PixelPath(data["cnn"], blocks, data["query"].shape[1])
    model.eval()  # batch norm keeps its pretrained statistics; dropout is turned on for the head below
    head = [*model.proj.parameters(), model.log_scale]
    groups = [{"params": head, "lr": args.lr_head}]
    if blocks:
        groups.append({"params": model.cnn_parameters(), "lr": args.lr_cnn})
    else:
        for parameter in model.cnn_parameters():
            parameter.requires_grad = False
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    n = len(data["examples"])
    scheduler = cosine_with_warmup(optimizer, args.epochs * int(np.ceil(n / 64)), 0.1)
    below_train, below_dev = data[f"train_{blocks}"], data[f"dev_{blocks}"]

    def dev_score() -> float:
        model.eval()
        documents = encode_in_chunks(model, below_dev, data["dev_verbal"])
        return mrr_at_10(documents, data["dev_ids"], data["dev_queries"], data["dev_qids"], data["dev_qrels"])

    history = [(0, dev_score())]
    for epoch in range(1, args.epochs + 1):
        model.proj.train()
        for batch in tqdm(list(minibatches(n, 64, rng)), desc=f"{blocks} blocks, epoch {epoch}", leave=False):
            rows = data["image_row"][batch]
            documents = model(below_train[rows].float(), data["train_verbal"][rows])
            scale = model.log_scale.clamp(max=np.log(MAX_LOGIT_SCALE)).exp()
            groups_in_batch = data["group"][batch]
            # Another example of the same query or image is masked, not pushed away (its own column stays).
            same = (groups_in_batch[:, None] == groups_in_batch[None, :]) | (rows[:, None] == rows[None, :])
            relevant = [set(np.flatnonzero(row).tolist()) for row in same]
            loss = masked_contrastive(data["query"][batch], documents, scale, range(len(batch)), relevant)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        history.append((epoch, dev_score()))
    return history


def load_data(settings: Settings, resources: Resources, block_counts: list[int], cnn: nn.Module) -> dict:
    train = DataOptions().apply(load_training_data(settings, resources, with_text_documents=False), resources)
    train = train.image_only()
    text = load_encoder(STAND_INS.text)
    words = resources.verbaliser(STAND_INS.text).words
    row = {doc_id: i for i, doc_id in enumerate(train.image_ids)}
    train_docs = [train.documents[doc_id] for doc_id in train.image_ids]
    stamps = load_dev_set(settings).image_documents
    bench = load_benchmark(settings.benchmark_dir, "images", "dev")
    qids = list(bench.queries)
    groups = {g: i for i, g in enumerate(sorted({e.group for e in train.examples}))}
    data = {
        "cnn": cnn,
        "examples": train.examples,
        "image_row": np.array([row[e.positive_id] for e in train.examples]),
        "group": np.array([groups[e.group] for e in train.examples]),
        "query": torch.as_tensor(text.encode([e.query for e in train.examples])),
        "train_verbal": verbal_vectors(text, words, resources.image_features(train_docs, STAND_INS.image).logits),
        "dev_verbal": verbal_vectors(text, words, resources.image_features(stamps, STAND_INS.image).logits),
        "dev_ids": [doc.id for doc in stamps],
        "dev_qids": qids,
        "dev_queries": text.encode([bench.queries[q] for q in qids]),
        "dev_qrels": bench.qrels,
    }
    for split, docs in (("train", train_docs), ("dev", stamps)):
        for blocks, below in activations_below(settings, cnn, docs, block_counts, f"{split} images").items():
            data[f"{split}_{blocks}"] = below
    return data


def verbal_vectors(text, words, logits: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(text.encode(words(logits, SERVED.verbal_top)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--blocks", type=int, nargs="*", default=list(DEFAULT_BLOCKS), help="CNN blocks trained (0: frozen)"
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr-head", type=float, default=1e-4, help="the served head phase's rate")
    parser.add_argument("--lr-cnn", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    settings = Settings()
    resources = Resources(settings)
    cnn = resources.encoder(STAND_INS.image).model.eval()
    # The activations for the default counts are always cached with the ones asked for: one pass gives all,
    # and a later run with any subset then finds them on disk instead of rendering every image again.
    data = load_data(settings, resources, sorted(set(args.blocks) | set(DEFAULT_BLOCKS)), cnn)
    print(
        f"{len(data['examples'])} training pairs, {len(data['dev_qids'])} dev queries; lr head {args.lr_head}, "
        f"lr CNN {args.lr_cnn}"
    )
    print("| CNN blocks trained | dev stamps MRR@10 by epoch (0 = start) | best epoch | best |")
    print("|---|---|---|---|")
    for blocks in args.blocks:
        history = run_variant(args, blocks, data)
        best = max(history, key=lambda h: h[1])
        curve = " ".join(f"{score:.3f}" for _, score in history)
        print(f"| {blocks} | {curve} | {best[0]} | {best[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
