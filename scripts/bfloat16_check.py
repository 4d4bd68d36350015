"""Training in float32 against bfloat16 autocast: the dev history and the wall time of each, nothing saved.

MARVEL's and CIEA's stages and the sparse head's epochs compute their products in bfloat16 under autocast
(``train_steps(..., bfloat16=True)``; weights, gradients and the optimiser stay float32). This trains each
named method twice from the same start on the same machine, once in each precision, and prints what dev
scored and how long the run took, so that the choice can be rerun anywhere (a CPU without bfloat16 units
computes bfloat16 slowly: there the float32 runs may well be the faster). Run after `make train`
(CIEA starts from the trained MARVEL, the sparse head reads the trained in-batch model):

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python scripts/bfloat16_check.py marvel ciea
    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python scripts/bfloat16_check.py lsr
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from mmr.config import Settings
from mmr.retrievers.base import Resources


def train_once(name: str, bfloat16: bool, settings: Settings, resources: Resources):
    if name == "lsr":
        from mmr.methods.lsr.settings import LSRTraining
        from mmr.methods.lsr.training import train

        return train(settings, resources, hp=LSRTraining(bfloat16=bfloat16), save=False)
    from mmr.methods import ciea, marvel

    module = {"marvel": marvel, "ciea": ciea}[name]
    stages = replace(module.STAGES, bfloat16=bfloat16)
    return module.train(settings, resources, hp=marvel.SERVED_DATA, save=False, stages=stages)


def history(manifest) -> str:
    """Each checkpoint's dev score; for the sparse head each epoch's stamps / mixed score and the epochs' seconds
    (its second run reads the teacher's texts from the disk cache, so the whole run's time flatters it)."""
    if manifest.method != "lsr":
        return ", ".join(
            f"{e['checkpoint']} {e['dev_mrr_at_10']:.4f}" for e in manifest.history if "dev_mrr_at_10" in e
        )
    epochs = [e for e in manifest.history if str(e.get("stage", "")).startswith("epoch")]
    scores = [
        f"{e['stage']} {e['dev_stamps_expanded']:.4f}"
        + (f"/{e['dev_mixed_expanded']:.4f}" if "dev_mixed_expanded" in e else "")
        for e in epochs
    ]
    chosen = next(e for e in manifest.history if e.get("stage") == "chosen")
    return f"{', '.join(scores)}; chosen {chosen['checkpoint']}, epochs {sum(e['seconds'] for e in epochs):.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="+", choices=["marvel", "ciea", "lsr"])
    args = parser.parse_args()
    settings = Settings()
    resources = Resources(settings)
    torch.set_num_threads(settings.training_threads)
    rows = []
    for name in args.methods:
        for bfloat16 in (False, True):
            started = time.time()
            manifest = train_once(name, bfloat16, settings, resources)
            seconds = time.time() - started
            precision = "bfloat16" if bfloat16 else "float32"
            served = f"{manifest.dev_mrr_at_10:.4f}"
            rows.append(f"| {name} | {precision} | {served} | {seconds:.0f} | {history(manifest)} |")
    print("| method | precision | dev MRR@10 as served | seconds | dev history |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
