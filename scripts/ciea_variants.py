"""CIEA's extractor stage in variants, each from the same trained MARVEL, scored on dev only (nothing saved).

CIEA's own stage (the complementary-information extractor with its second loss, the language model
frozen) lowered stamps dev below its start, MARVEL with its caption appended, while it trained the visual
module and class words along; this shows which part of that stage does it. The first six variants run the
extractor stage alone (the fifth and sixth are controls with the extractor frozen); the last two add
ANCE as the served run does, with the extractor frozen there (served) or trained with the top layers.
Each prints the dev MRR@10 of the start and after each stage, on the stamps dev queries CIEA chooses
its checkpoint by. Run after `python -m mmr train marvel` (on the 2-core machine three extractor-stage
variants took 4 minutes 40 seconds with the set-up, each of the last two about 4 minutes; `--only PREFIX`,
repeatable, runs the variants whose name starts with it):

    PYTHONPATH=. .venv/bin/python scripts/ciea_variants.py
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from mmr.config import Settings
from mmr.methods import ciea, marvel
from mmr.methods.visual_states import load_tables
from mmr.retrievers.base import Resources

EXTRACTOR_STAGE = replace(ciea.STAGES, ance_epochs=0.0)
# The extractor stage as served until commit c9f6338: the visual module and class words trained along
JOINT = replace(EXTRACTOR_STAGE, visual_lr=3e-5, word_lr=2e-4, extractor_lr=1e-4)
# name -> (stage settings, weight of the second loss)
VARIANTS = {
    "served: extractor alone at lr 3e-5 (visual module and class words frozen)": (
        EXTRACTOR_STAGE,
        ciea.EXTRA_LOSS_WEIGHT,
    ),
    "extractor, visual module and class words (served before)": (JOINT, ciea.EXTRA_LOSS_WEIGHT),
    "the same, without the second loss": (JOINT, 0.0),
    "extractor alone, lr 1e-4": (replace(EXTRACTOR_STAGE, extractor_lr=1e-4), ciea.EXTRA_LOSS_WEIGHT),
    # Controls: the stage with the extractor left at its start (the identity), so that only the visual
    # module and the class words learn. If these fall as far, the extractor is not what lowers dev.
    "extractor frozen (visual module and class words only)": (
        replace(JOINT, extractor_lr=0.0),
        ciea.EXTRA_LOSS_WEIGHT,
    ),
    "extractor frozen, without the second loss": (replace(JOINT, extractor_lr=0.0), 0.0),
    # With ANCE after the extractor stage, as served:
    "served stages (the extractor frozen in ANCE)": (ciea.STAGES, ciea.EXTRA_LOSS_WEIGHT),
    "the extractor trained in ANCE too": (replace(ciea.STAGES, extractor_in_language=True), ciea.EXTRA_LOSS_WEIGHT),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the seed ciea is trained with")
    parser.add_argument("--only", action="append", help="run only the variants whose name starts with this")
    args = parser.parse_args()
    settings = Settings()
    if not (settings.models_dir / marvel.NAME / "manifest.json").exists():
        raise SystemExit("no trained MARVEL model: run `python -m mmr train marvel` first")
    resources = Resources(settings)
    torch.set_num_threads(settings.training_threads)
    table, dev = load_tables(settings, resources, marvel.SERVED_DATA)
    print("| variant | dev stamps, start | after the extractor stage | after ANCE |")
    print("|---|---|---|---|")
    for name, (stages, weight) in VARIANTS.items():
        if args.only and not any(name.startswith(prefix) for prefix in args.only):
            continue
        _, trainer, start = ciea.fit(resources, table, dev, args.seed, stages, weight)
        if not start.startswith("marvel@"):  # present but unreadable: ciea fell back to MiniLM
            raise SystemExit(f"the MARVEL model could not be loaded (started from {start}): retrain it")
        scores = {entry["checkpoint"]: entry["dev_mrr_at_10"] for entry in trainer.history}
        ance = f"{scores['4-ance']:.3f}" if "4-ance" in scores else "-"
        print(f"| {name} | {scores['0-start']:.3f} | {scores['1-visual']:.3f} | {ance} |", flush=True)


if __name__ == "__main__":
    main()
