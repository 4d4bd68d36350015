"""Every published preset on one machine, in one go: load, encode, index and search, and print what it took.

Made for a CUDA machine with faiss-gpu (issue: the papers' methods on the papers' weights), runnable anywhere.
A preset whose folder variable is set is read from its real files (README, "The papers' own checkpoints");
the others from a tiny random stand-in saved in exactly the published layout (the tests' builders), so the
script always exercises every reader, the device moves and the faiss index on that device. It prints, per
preset: the files used, the device the model sits on, load seconds, documents per second, whether the dense
index went to the GPU, and the p50 of a text and an image query.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python scripts/gpu_presets_check.py [--device cuda] [--documents 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def stand_in(name: str, folder: Path) -> Path:
    """A tiny random model of the preset's architecture, in the published layout (built by the tests' code)."""
    if name in ("univl-dr-webqa", "clip-dpr-webqa"):
        from transformers import AutoTokenizer

        from tests.presets.openai_clip_layout import random_openai_state, save_base_clip

        base = save_base_clip(folder / "clip")
        state = random_openai_state(len(AutoTokenizer.from_pretrained(str(base))))
        torch.save({"epoch": 0, "model": state}, folder / "model.best.pt")
    elif name in ("marvel-ance-webqa", "marvel-dpr-webqa", "ciea-webqa"):
        from tests.presets.tiny_marvel import save_tiny_marvel

        save_tiny_marvel(folder, ciea=name == "ciea-webqa")
    else:
        from tests.tiny_d2s import save_tiny_d2s

        save_tiny_d2s(folder, ["a", "red", "car", "cat", "dog", "on", "the", "road"])
    return folder


def corpus(folder: Path, count: int):
    from mmr.corpus.format import Corpus
    from mmr.types import Document

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    documents = []
    for i in range(count):
        if i % 2:
            documents.append(Document(f"t/{i}", "text", f"a red car number {i} on the road"))
            continue
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        documents.append(Document(f"i/{i}", "image", "", str(path), {"caption": f"a cat on a road {i}"}))
    return Corpus("check", tuple(documents))


def p50_ms(search, query, repeats: int = 20) -> float:
    search(query)  # warm-up: first CUDA calls pay for kernels and allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        search(query)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def check(name: str, device: str, documents: int, scratch: Path) -> str:
    from mmr.config import Settings
    from mmr.presets.registry import PRESETS
    from mmr.retrievers.base import Resources
    from mmr.retrievers.preset import load_preset_model, preset_retriever
    from mmr.types import Query

    spec = PRESETS[name]
    real = bool(os.environ.get(spec.variable))
    if not real:
        os.environ[spec.variable] = str(stand_in(name, scratch / name))
    resources = Resources(Settings(index_store=scratch / "store", data_dir=scratch / "data"), device=device)
    started = time.perf_counter()
    model = load_preset_model(spec, resources)
    loaded = time.perf_counter() - started
    modules = [value for value in vars(model).values() if isinstance(value, torch.nn.Module)]
    where = ", ".join(sorted({str(next(module.parameters()).device) for module in modules})) or "n/a"
    docs = corpus(scratch / f"{name}-docs", documents)
    started = time.perf_counter()
    retriever = preset_retriever(name).build(docs, resources, scratch / f"{name}-index")
    rate = len(docs) / (time.perf_counter() - started)
    on_gpu = getattr(retriever.index, "on_gpu", False)
    image = Image.open(docs.documents[0].image_path)
    text_ms = p50_ms(lambda q: retriever.search(q, 10), Query(text="a red car"))
    image_ms = p50_ms(lambda q: retriever.search(q, 10), Query(image=image, image_sha="x"))
    files = "real files" if real else "tiny stand-in"
    return (
        f"| {name} | {files} | {where} | {loaded:.2f} | {rate:.1f} | {'sparse' if model.sparse else on_gpu} "
        f"| {text_ms:.2f} | {image_ms:.2f} |"
    )


def main() -> None:
    from mmr.device import resolve_device
    from mmr.index import faiss_gpu_available
    from mmr.presets.registry import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA where there is one)")
    parser.add_argument("--documents", type=int, default=64)
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, device {device} (GPU: {gpu}), faiss GPU: {faiss_gpu_available()}\n")
    print("| preset | files | model on | load s | documents/s | dense index on GPU | text p50 ms | image p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.presets:
            try:
                print(check(name, device, args.documents, Path(scratch)), flush=True)
            except Exception as err:  # one preset's failure is a row of the report, not the end of the run
                print(f"| {name} | failed: {type(err).__name__}: {err} | | | | | | |", flush=True)


if __name__ == "__main__":
    main()
