"""Built-in example experiments, shipped as experiment files (the export format).

Data only: ``simulator.engine.spec.load_example(name)`` reads one as a fresh Experiment (new id,
no owner) each time.
"""

from __future__ import annotations

from pathlib import Path

from simulator.domain.errors import NotFoundError

HERE = Path(__file__).parent
# name -> file in this package
EXAMPLES: dict[str, str] = {
    "prison_study": "prison_study.yaml",
}


def example_names() -> list[str]:
    return list(EXAMPLES)


def example_path(name: str) -> Path:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in EXAMPLES:
        raise NotFoundError(f"No example {name!r}; there are: {', '.join(EXAMPLES)}.")
    return HERE / EXAMPLES[key]


__all__ = ["EXAMPLES", "example_names", "example_path"]
