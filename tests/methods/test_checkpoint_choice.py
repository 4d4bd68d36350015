"""Checkpoint choice with a cost: a dev tie goes to the cheaper state (training/common.py)."""

import torch

from mmr.training.common import BestCheckpoint, CheapestWithinTie


def offer_all(chooser, offers):
    module = torch.nn.Linear(1, 1, bias=False)
    for value, score, cost in offers:
        with torch.no_grad():
            module.weight.fill_(value)
        if isinstance(chooser, CheapestWithinTie):
            chooser.offer(score, cost, module, f"w={value}")
        else:
            chooser.offer(score, module, f"w={value}")
    chooser.restore(module)
    return float(module.weight)


# (weight that marks the state, dev score, cost): the dense early epoch scores best by .002.
OFFERS = [(1.0, 0.300, 3.0), (2.0, 0.3076, 2.9), (3.0, 0.301, 0.9), (4.0, 0.3054, 0.7), (5.0, 0.297, 0.6)]


def test_the_cheapest_state_within_the_tolerance_is_restored():
    chooser = CheapestWithinTie(tolerance=0.005)
    assert offer_all(chooser, OFFERS) == 4.0  # .3054 ties .3076; .297 and .301 do not
    assert chooser.tag == "w=4.0" and chooser.score == 0.3054


def test_zero_tolerance_is_the_best_score_alone():
    assert offer_all(CheapestWithinTie(tolerance=0.0), OFFERS) == 2.0
    assert offer_all(BestCheckpoint(), OFFERS) == 2.0


def test_a_later_better_score_drops_states_it_no_longer_ties():
    chooser = CheapestWithinTie(tolerance=0.005)
    offers = [(1.0, 0.30, 0.1), (2.0, 0.32, 5.0)]  # the cheap one falls out of the tie once .32 arrives
    assert offer_all(chooser, offers) == 2.0
    assert len(chooser._candidates) == 1


def test_nothing_offered_restores_nothing():
    chooser = CheapestWithinTie(tolerance=0.005)
    module = torch.nn.Linear(1, 1, bias=False)
    before = module.weight.detach().clone()
    chooser.restore(module)
    assert torch.equal(module.weight, before) and chooser.tag == "" and chooser.score == -1.0
