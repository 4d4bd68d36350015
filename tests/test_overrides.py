"""`mmr train NAME --set KEY=VALUE`: parsing by the settings' declared types, and clear refusals."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from mmr.cli import app
from mmr.methods.lsr.settings import LSRTraining
from mmr.training.overrides import OverrideError, apply_overrides


@dataclass(frozen=True)
class Toy:
    epochs: int = 3
    rate: float = 0.1
    name: str = "a"
    flag: bool = False
    cuts: tuple[int, ...] = (1, 2)


def test_values_are_parsed_by_the_declared_type_and_the_rest_is_kept():
    toy = apply_overrides(Toy(), ["epochs=7", "rate=3e-5", "name=b", "flag=true", "cuts=8, 16,32"])
    assert toy == Toy(epochs=7, rate=3e-5, name="b", flag=True, cuts=(8, 16, 32))
    assert apply_overrides(Toy(), []) == Toy()
    assert apply_overrides(Toy(), ["rate=1"]).rate == 1.0 and isinstance(apply_overrides(Toy(), ["rate=1"]).rate, float)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("epochs", "KEY=VALUE"),
        ("nope=1", "Settings: ['cuts', 'epochs'"),
        ("epochs=two", "expected"),
        ("flag=yes", "true or false"),
    ],
)
def test_bad_assignments_say_what_is_wrong(assignment, message):
    with pytest.raises(OverrideError, match=message.replace("[", r"\[")):
        apply_overrides(Toy(), [assignment])


def test_the_sparse_retrievers_settings_can_all_be_overridden_from_text():
    hp = apply_overrides(LSRTraining(), ["penalty_query=0.003", "expansion-floor=0.5", "query_cuts=64,128"])
    assert (hp.penalty_query, hp.expansion_floor, hp.query_cuts) == (0.003, 0.5, (64, 128))
    assert hp.epochs == LSRTraining().epochs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "bm25", "--set", "epochs=1"], "has nothing to train"),
        (["train", "procrustes", "--set", "epochs=1"], "takes no --set"),
        (["train", "marvel", "--set", "epochs=1"], "is not a setting of GridDataOptions"),
        (["train", "ciea", "--set", "augmented_views=2"], "reads grid features"),
        (["train", "lsr", "--set", "epoch=1"], "is not a setting of LSRTraining"),
        (["train", "lsr", "--set", "penalty=l2"], "penalty 'l2' is not one of ['flops', 'l1']"),
        (["train", "lsr", "--set", "expansion_floor=2"], "is not a probability"),
        (["train", "dense-inbatch", "--set", "augmented_views=-1"], "augmented_views must be 0 or more"),
    ],
)
def test_the_train_command_refuses_before_any_work(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    words = " ".join(result.output.replace("│", " ").split())  # the error box wraps at the terminal width
    assert message in words
