"""``KEY=VALUE`` overrides of a trainer's settings dataclass: what ``python -m mmr train NAME --set`` parses.

An exploratory run should be a command anyone can rerun, not an edited constant: the overridden
settings land in the manifest's ``config`` like every other setting.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence


class OverrideError(ValueError):
    pass


def _parse(text: str, kind) -> object:
    origin = typing.get_origin(kind)
    if origin is tuple:  # tuple[int, ...]: comma-separated
        item = typing.get_args(kind)[0]
        return tuple(_parse(part.strip(), item) for part in text.split(",") if part.strip())
    if kind is bool:
        lowered = text.lower()
        if lowered not in {"true", "false", "1", "0"}:
            raise ValueError(f"{text!r} is not true or false")
        return lowered in {"true", "1"}
    if kind in (int, float, str):
        return kind(text)
    raise ValueError(f"settings of type {kind} cannot be set from the command line")


def apply_overrides(settings, assignments: Sequence[str]):
    """A copy of the dataclass instance ``settings`` with each ``KEY=VALUE`` applied, values parsed by the
    field's declared type. Raises OverrideError naming the valid keys or the expected type."""
    types = typing.get_type_hints(type(settings))
    fields = {field.name for field in dataclasses.fields(settings)}
    changes = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise OverrideError(f"{assignment!r} is not KEY=VALUE")
        if key not in fields:
            raise OverrideError(f"{key!r} is not a setting of {type(settings).__name__}. Settings: {sorted(fields)}")
        try:
            changes[key] = _parse(value.strip(), types[key])
        except ValueError as err:
            raise OverrideError(f"{key}={value!r}: expected {types[key]} ({err})") from err
    try:
        return dataclasses.replace(settings, **changes)
    except ValueError as err:  # the settings' own checks (__post_init__)
        raise OverrideError(str(err)) from err
