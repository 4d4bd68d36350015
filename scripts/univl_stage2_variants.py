"""UniVL-DR stage 2 variants from the same stage-1 model, scored on dev only (nothing is saved).

Stage 2 (modality-balanced hard negatives) lowered stamps dev for the served UniVL-DR; this reruns the
variants docs/findings.md reports, each from the trained ``dense-inbatch`` model (stage 1), with the rule
the served model was chosen by: the best epoch by the mean dev MRR@10 of both settings. Run after
`python -m mmr train dense-inbatch` (about 2 minutes of set-up, then under a minute per variant):

    PYTHONPATH=. .venv/bin/python scripts/univl_stage2_variants.py
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from mmr.config import Settings
from mmr.methods.univl_dr import MINING_RANKS, MODEL, STAGE2, TrainingRun, hard_negative_stage, reuse_stage1
from mmr.retrievers.base import Resources

FASTER = replace(STAGE2, lr_head=1e-4)  # the head's rate served until the borrowed captions
# name -> (stage settings, mining ranks)
VARIANTS = {
    f"served: ranks 30-200, head lr {STAGE2.lr_head:g}": (STAGE2, MINING_RANKS),
    "ranks 30-200, head lr 1e-4": (FASTER, MINING_RANKS),
    "the paper's top 100 (ranks 0-100), head lr 1e-4": (FASTER, (0, 100)),
    "negatives past the top 10 (ranks 10-100), head lr 1e-4": (FASTER, (10, 100)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the seed dense-inbatch was trained with")
    args = parser.parse_args()
    settings = Settings()
    run = TrainingRun(settings, Resources(settings), MODEL, args.seed)
    print("| stage 2 variant | best epoch | dev stamps | dev mixed | dev mean |")
    print("|---|---|---|---|---|")
    for name, (stage, ranks) in VARIANTS.items():
        stage1 = reuse_stage1(run, args.seed)  # a fresh copy of stage 1 for every variant
        if stage1 is None:
            raise SystemExit("no matching dense-inbatch model: run `python -m mmr train dense-inbatch` first")
        if name.startswith("served"):
            print(row("stage 1 (the dense-inbatch model)", best_entry(stage1.history), epoch="-"))
        history: list = []
        hard_negative_stage(run, history, args.seed, stage, ranks)
        print(row(name, best_entry(history)), flush=True)


def best_entry(history: list[dict]) -> dict:
    """The checkpoint a stage keeps: the best dev mean of its entries (first among equals, as BestCheckpoint)."""
    return max(history, key=lambda h: h["dev_mrr_at_10"])


def row(name: str, entry: dict, epoch: str | None = None) -> str:
    scores = " | ".join(f"{entry[key]:.3f}" for key in ("dev_stamps", "dev_mixed", "dev_mrr_at_10"))
    return f"| {name} | {epoch or entry['epoch']} | {scores} |"


if __name__ == "__main__":
    main()
