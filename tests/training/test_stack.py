"""The training stack every trained method runs on: frozen states, the masked loss, the step loop, the dev log."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmr.training.stack import DevLog, FrozenStates, TextStates, masked_contrastive, train_steps


def ragged(lengths, hidden=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, hidden, generator=generator) for n in lengths]


def padded_states_of(pieces):
    """A bottom that returns a batch padded to its longest row, with garbage in the padding."""

    def states_of(rows):
        chosen = [pieces[int(r)] for r in rows]
        width = max(len(p) for p in chosen)
        hidden = torch.full((len(chosen), width, chosen[0].shape[1]), 99.0)
        mask = torch.zeros(len(chosen), width, dtype=torch.long)
        for i, p in enumerate(chosen):
            hidden[i, : len(p)], mask[i, : len(p)] = p, 1
        return hidden, mask

    return states_of


def test_frozen_states_keep_each_row_unpadded_whatever_batch_computed_it():
    pieces = ragged([2, 5, 1, 4, 3])
    states = FrozenStates.compute(padded_states_of(pieces), 5, batch_size=2, lengths=[2, 5, 1, 4, 3])
    assert len(states) == 5 and states.hidden.dtype == torch.float16
    assert states.hidden.shape[0] == 15  # packed: no padding stored
    hidden, mask = states.take([3, 2])
    assert hidden.shape == (2, 4, 3) and mask.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    torch.testing.assert_close(hidden[0], pieces[3], atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(hidden[1, :1], pieces[2], atol=1e-2, rtol=1e-2)
    assert (hidden[1, 1:] == 0).all()  # padding is zeros, never the bottom's garbage


def test_concatenated_states_number_the_second_part_after_the_first():
    first, second = ragged([2, 3]), ragged([1, 4], seed=1)
    joined = FrozenStates.pack(first).concat(FrozenStates.pack(second))
    assert len(joined) == 4
    for row, piece in enumerate(first + second):
        torch.testing.assert_close(joined.row(row).float(), piece, atol=1e-2, rtol=1e-2)


def test_text_states_compute_each_text_once_as_it_is_met():
    seen: list[list[str]] = []

    def bottom(texts):
        seen.append(list(texts))
        pieces = [torch.full((len(t), 2), float(len(t))) for t in texts]
        return padded_states_of(pieces)(np.arange(len(texts)))

    states = TextStates(bottom, batch_size=2)
    states.add(["ab", "abcd"])
    states.add(["abcd", "a", "ab"])  # only "a" is new
    assert sorted(sum(seen, [])) == ["a", "ab", "abcd"] and "a" in states
    hidden, mask = states.batch(["a", "abcd"])
    assert mask.sum(1).tolist() == [1, 4] and hidden[1, 0, 0] == 4.0 and hidden[0, 0, 0] == 1.0


def test_masked_contrastive_is_the_softmax_over_the_columns_a_row_may_see():
    generator = torch.Generator().manual_seed(0)
    queries = F.normalize(torch.randn(3, 6, generator=generator), dim=-1)
    documents = F.normalize(torch.randn(5, 6, generator=generator), dim=-1)
    columns = [10, 11, 12, 13, 11]  # column 4 repeats row 1's document
    relevant = [{10, 13}, {11}, {12}]  # 13 is another positive of row 0's group
    loss = masked_contrastive(queries, documents, 10.0, columns, relevant)
    by_hand = []
    for i, rel in enumerate(relevant):
        visible = [j for j, c in enumerate(columns) if j == i or c not in rel]
        scores = torch.stack([10.0 * queries[i] @ documents[j] for j in visible])
        by_hand.append(torch.logsumexp(scores, 0) - 10.0 * queries[i] @ documents[i])
    torch.testing.assert_close(loss, torch.stack(by_hand).mean())
    # a column masked for row 0 may come as close to it as it likes at no cost to row 0
    moved = documents.clone()
    moved[3] = queries[0]
    row_0 = queries[:1], 10.0, columns, relevant[:1]
    torch.testing.assert_close(masked_contrastive(row_0[0], moved, *row_0[1:]), by_hand[0])


def test_train_steps_steps_once_per_batch_and_returns_the_mean_loss():
    weight = torch.nn.Parameter(torch.tensor([4.0]))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    losses = []

    def loss_of(batch):
        loss = (weight * batch).pow(2).sum()
        losses.append(float(loss.detach()))
        return loss

    mean = train_steps([1.0, 1.0, 1.0], loss_of, optimizer, clip=[weight])
    assert mean == pytest.approx(np.mean(losses)) and losses[0] > losses[1] > losses[2]
    # clipping to norm 1: each step moves the weight by at most lr
    assert float(weight) == pytest.approx(4.0 - 3 * 0.1)


def test_train_steps_in_bfloat16_multiplies_in_bfloat16_and_keeps_float32_weights():
    layer = torch.nn.Linear(8, 4)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    products = []

    def loss_of(batch):
        out = layer(batch)
        products.append(out.dtype)
        return out.float().pow(2).mean()

    before = layer.weight.detach().clone()
    train_steps([torch.randn(3, 8)], loss_of, optimizer, bfloat16=True)
    train_steps([torch.randn(3, 8)], loss_of, optimizer)
    assert products == [torch.bfloat16, torch.float32]
    assert layer.weight.dtype == torch.float32 and layer.weight.grad.dtype == torch.float32
    assert not torch.equal(layer.weight, before)


def test_dev_log_keeps_the_best_state_counts_stale_scores_and_writes_every_score():
    module = torch.nn.Linear(1, 1, bias=False)
    log = DevLog()
    module.weight.data.fill_(1.0)
    assert log.record("a", {"stamps": 0.2, "mixed": 0.4}, module, epoch=1)
    module.weight.data.fill_(2.0)
    assert not log.record("b", 0.25, module)
    assert not log.record("start", 0.9, module, eligible=False)  # logged, never kept
    assert log.stale == 2 and log.out_of_patience(2) and not log.out_of_patience(None)
    assert log.history[0] == {"checkpoint": "a", "epoch": 1, "dev_stamps": 0.2, "dev_mixed": 0.4, "dev_mrr_at_10": 0.3}
    assert [h["dev_mrr_at_10"] for h in log.history] == [0.3, 0.25, 0.9]
    log.restore(module)
    assert log.best.tag == "a" and float(module.weight) == 1.0
