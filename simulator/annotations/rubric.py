"""Rubric files: a rubric read from YAML or JSON and checked (the rubric itself, its questions
and their answers are domain objects: :mod:`simulator.domain.rubric`)."""

from __future__ import annotations

from pathlib import Path

from simulator.domain.errors import SpecError
from simulator.domain.rubric import Rubric, RubricError, parse_rubric
from simulator.engine.spec import read_data_file


def load_rubric(path: str | Path) -> Rubric:
    """Read and check a rubric file; RubricError names the file and the field."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RubricError(f"{path}: no such rubric file")
    try:
        data = read_data_file(path)
    except SpecError as exc:
        raise RubricError(str(exc)) from None
    return parse_rubric(data, source=str(path))
