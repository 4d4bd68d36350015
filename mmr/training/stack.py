"""The training stack every trained method runs on: frozen states computed once, one contrastive loss,
one step loop, one dev log.

A method brings what is its own (which parameters train, how a document is embedded, which stages
follow each other) and takes the rest from here:

- ``FrozenStates``: the hidden states below the trained layers of a set of sequences, computed once
  and stored packed in float16 (no padding kept), because recomputing a frozen bottom every step
  is most of the cost of fine-tuning a transformer on two cores. ``TextStates`` is the same keyed
  by text, for a run that meets its texts as it goes.
- ``masked_contrastive``: a softmax over candidate documents where row ``i``'s positive is column
  ``i`` and any other column relevant to row ``i`` is masked rather than pushed away.
- ``train_steps``: zero-grad, backward, clip, step, schedule, with a progress bar.
- ``DevLog``: every dev score into the run's history, the best state kept (early stopping on dev,
  as the papers do), epochs without a gain counted for patience.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from mmr.progress import ProgressBar
from mmr.training.common import BestCheckpoint

log = logging.getLogger(__name__)

StatesOf = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]  # rows -> (hidden, mask) of those rows


# ----------------------------------------------------------------------------- frozen states


class FrozenStates:
    """Hidden states of ``n`` sequences, packed: row ``r`` is ``hidden[starts[r]:starts[r + 1]]``."""

    def __init__(self, hidden: torch.Tensor, starts: torch.Tensor, layers: int | None = None):
        self.hidden, self.starts, self.layers = hidden, starts, layers

    def __len__(self) -> int:
        return len(self.starts) - 1

    @classmethod
    @torch.no_grad()
    def compute(
        cls,
        states_of: StatesOf,
        n: int,
        layers: int | None = None,
        batch_size: int = 64,
        lengths: Sequence[int] | None = None,
        progress: str | None = None,
    ) -> FrozenStates:
        """``states_of(rows)`` runs the frozen bottom on those rows. ``lengths`` (e.g. token counts) batch
        similar lengths together, so that few padding positions are computed at all."""
        order = np.argsort(lengths, kind="stable") if lengths is not None else np.arange(n)
        pieces: list[torch.Tensor | None] = [None] * n
        starts = range(0, n, batch_size)
        for start in ProgressBar(starts, desc=progress, unit="batch") if progress else starts:
            rows = order[start : start + batch_size]
            hidden, mask = states_of(rows)
            for row, states, length in zip(rows, hidden, mask.sum(1).tolist()):
                pieces[row] = states[: int(length)].to(torch.float16)
        return cls.pack(pieces, layers)

    @classmethod
    def pack(cls, pieces: Sequence[torch.Tensor], layers: int | None = None) -> FrozenStates:
        lengths = torch.tensor([len(p) for p in pieces], dtype=torch.long)
        starts = torch.zeros(len(pieces) + 1, dtype=torch.long)
        starts[1:] = lengths.cumsum(0)
        hidden = torch.cat(list(pieces)) if len(pieces) else torch.zeros((0, 0), dtype=torch.float16)
        return cls(hidden, starts, layers)

    def row(self, r: int) -> torch.Tensor:
        return self.hidden[self.starts[r] : self.starts[r + 1]]

    def take(self, rows: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows' states padded to the longest of them (float32) and their attention mask."""
        pieces = [self.row(int(r)) for r in np.asarray(rows).reshape(-1)]
        hidden = pad_sequence(pieces, batch_first=True).float()
        mask = pad_sequence([torch.ones(len(p), dtype=torch.long) for p in pieces], batch_first=True)
        return hidden, mask

    def concat(self, other: FrozenStates) -> FrozenStates:
        starts = torch.cat([self.starts, other.starts[1:] + self.starts[-1]])
        return FrozenStates(torch.cat([self.hidden, other.hidden]), starts, self.layers)


class TextStates:
    """Frozen states keyed by text: each distinct text computed once, when training first needs it."""

    def __init__(self, states_of_texts: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]], batch_size=128):
        self.states_of_texts, self.batch_size = states_of_texts, batch_size
        self.row: dict[str, int] = {}
        self.states = FrozenStates.pack([])

    def __contains__(self, text: str) -> bool:
        return text in self.row

    @property
    def texts(self) -> list[str]:
        return list(self.row)

    def add(self, texts: Iterable[str], progress: str | None = None) -> None:
        todo = sorted({t for t in texts if t not in self.row}, key=len)  # similar lengths pad less
        if not todo:
            return
        added = FrozenStates.compute(
            lambda rows: self.states_of_texts([todo[i] for i in rows]),
            len(todo),
            batch_size=self.batch_size,
            progress=progress,
        )
        self.states = added if not self.row else self.states.concat(added)
        offset = len(self.row)
        self.row.update({text: offset + i for i, text in enumerate(todo)})

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.states.take([self.row[t] for t in texts])


@contextmanager
def frozen(module: torch.nn.Module):
    """Eval mode without gradients for computing states, the module's mode restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


@contextmanager
def threads(count: int):
    """Torch's intra-op threads set for a block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- loss and steps


def masked_contrastive(
    queries: torch.Tensor,
    documents: torch.Tensor,
    scale: torch.Tensor | float,
    columns: Sequence[int] | np.ndarray,
    relevant: Sequence[set[int]],
) -> torch.Tensor:
    """Cross-entropy over the candidate documents, row ``i``'s positive at column ``i``.

    ``columns`` names each candidate's document row; a column holding a document in ``relevant[i]`` (the
    same image again, the positive of an example with the same query text, a mined "negative" that is
    really relevant) is masked for row ``i`` instead of being pushed away.
    """
    columns = [int(c) for c in columns]
    blocked = torch.tensor([[c in rel for c in columns] for rel in relevant], dtype=torch.bool)
    own = torch.arange(len(queries))
    blocked[own, own] = False
    logits = (scale * queries @ documents.T).masked_fill(blocked, float("-inf"))
    return F.cross_entropy(logits, own)


def train_steps(
    batches: Iterable,
    loss_of: Callable[[object], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    clip: Sequence[torch.nn.Parameter] | None = None,
    desc: str = "",
    total: int | None = None,
    unit: str = "step",
    bfloat16: bool = False,
) -> float:
    """One optimiser step per batch; returns the mean loss. ``clip`` clips those parameters' gradient
    norm to 1 before each step. ``bfloat16`` computes each loss under autocast to bfloat16: its matrix
    products run in bfloat16 (several times faster where the CPU has bfloat16 units), while weights,
    gradients and the optimiser stay float32."""
    losses = []
    device = next(p.device.type for group in optimizer.param_groups for p in group["params"])
    for batch in ProgressBar(batches, desc=desc, total=total, unit=unit, leave=False):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bfloat16):
            loss = loss_of(batch)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(clip, 1.0)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else float("nan")


# ----------------------------------------------------------------------------- dev


class DevLog:
    """A training run's dev record: every score in ``history``, the best state in ``best``.

    An entry names its ``checkpoint`` (the state scored) and holds the selection score as
    ``dev_mrr_at_10``: one dev MRR@10, or the mean of several given by dev collection, each of those
    beside it as ``dev_<name>``.
    """

    def __init__(self, best: BestCheckpoint | None = None, history: list | None = None):
        self.best = best or BestCheckpoint()
        self.history = history if history is not None else []
        self.stale = 0  # scores in a row that did not beat the best

    def record(
        self,
        checkpoint: str,
        scores: float | dict[str, float],
        module: torch.nn.Module | None = None,
        eligible: bool = True,
        **details,
    ) -> bool:
        """Log a dev score; with ``module`` and ``eligible``, offer the module's state as the best one.
        Returns whether it is the best so far."""
        per_set = scores if isinstance(scores, dict) else {}
        selection = float(np.mean(list(scores.values()))) if per_set else float(scores)
        entry = {"checkpoint": checkpoint, **details}
        entry.update({f"dev_{name}": round(float(s), 4) for name, s in per_set.items()})
        entry["dev_mrr_at_10"] = round(selection, 4)
        self.history.append(entry)
        improved = eligible and module is not None and self.best.offer(selection, module, checkpoint)
        self.stale = 0 if improved else self.stale + 1
        log.info("%s: dev MRR@10 %.4f%s", checkpoint, selection, " (best so far)" if improved else "")
        return improved

    def out_of_patience(self, patience: int | None) -> bool:
        return patience is not None and self.stale >= patience

    def restore(self, module: torch.nn.Module) -> None:
        self.best.restore(module)
