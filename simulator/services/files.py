"""The experiment file format (YAML or JSON): what export writes and import reads.

```yaml
format: llm-interaction-simulator/experiment
format_version: 1
experiment:
  name: ...
  roles: [...]
```

The file holds the experiment's definition only: no id, owner, timestamps, version or favourite
(an imported experiment belongs to whoever imports it). A bare experiment mapping (no wrapper) is
accepted too. Problems are reported with the dotted path of the field (``SpecError``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from simulator.domain import Experiment
from simulator.domain.errors import SpecError
from simulator.engine.spec import EXPERIMENT_FORMAT as FORMAT
from simulator.engine.spec import EXPERIMENT_FORMAT_VERSION as FORMAT_VERSION
from simulator.engine.spec import IDENTITY_FIELDS

# Reading the format is the engine's (a spec names experiment files): one reader for both.
from simulator.engine.spec import experiment_from_data as experiment_from_data
from simulator.engine.spec import read_experiment as read_experiment


def experiment_to_data(experiment: Experiment) -> dict[str, Any]:
    body = experiment.model_dump(mode="json", exclude=IDENTITY_FIELDS)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "experiment": body}


def write_experiment(experiment: Experiment, path: Path) -> Path:
    """Write YAML (JSON when the name ends in .json); the file is replaced atomically."""
    path = Path(path)
    data = experiment_to_data(experiment)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise SpecError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return path
