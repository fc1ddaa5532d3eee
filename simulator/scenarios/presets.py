"""Fidelity presets of the game kinds: a named bundle of parameter values that reproduces a
published design (``preset: chatcpr``, ``preset: repunet``).

A preset only changes defaults: a parameter the experiment (or the command line) sets keeps its
value, every other parameter the preset names takes the preset's value. The values are applied
without marking them as set, so a stored experiment keeps only what the researcher chose and
shows the preset by name; choosing another preset later changes every value it did not pin.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter


@functools.cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    annotation: Any = model.model_fields[name].annotation
    return TypeAdapter(annotation)


def apply_preset(params: BaseModel, values: Mapping[str, Any]) -> None:
    """Give each field of ``params`` that was not set explicitly its value in ``values``
    (validated against the field's type), without marking it as set."""
    cls = type(params)
    for name, value in values.items():
        if name in params.model_fields_set:
            continue
        params.__dict__[name] = _adapter(cls, name).validate_python(value)


__all__ = ["apply_preset"]
