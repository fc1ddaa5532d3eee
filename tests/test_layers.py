"""The layers hold (docs/architecture.md, "Layers"): import-linter's contracts in pyproject.toml
pass, and no import reaches past them at run time through ``importlib``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Every ``importlib.import_module`` in simulator/ and why it may be there. A module imported by
#: name cannot be checked by import-linter, so each one is a decision written down here.
DYNAMIC_IMPORTS = {
    # A user's scoring function (``python:package.module:function``): their code, not ours.
    "simulator/annotations/scorers.py": "a scorer the user names",
    # A kind's heavy modules, imported when a run of it first needs them: within scenarios/.
    "simulator/scenarios/registry.py": "a kind's own modules, named in its Kind",
    "simulator/scenarios/commons/__init__.py": "its own submodules, on first use",
    "simulator/scenarios/public_goods/__init__.py": "its own submodules, on first use",
    "simulator/scenarios/reputation/__init__.py": "its own submodules, on first use",
    # inflect imported without typeguard's instrumentation (the first inflection, the app).
    "simulator/roles/preload.py": "inflect and typeguard, not our packages",
}


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout, result.stdout


def _dynamic_imports(path: Path) -> list[int]:
    """Lines of ``importlib.import_module(...)`` and ``__import__(...)`` calls in ``path``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__"):
            lines.append(node.lineno)
    return lines


def test_no_import_reaches_past_the_layers_through_importlib() -> None:
    found = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "simulator").rglob("*.py"))
        if (lines := _dynamic_imports(path))
    }
    unexplained = {path: lines for path, lines in found.items() if path not in DYNAMIC_IMPORTS}
    assert not unexplained, (
        f"imports by name in {unexplained}: import explicitly (a lazy import inside a function "
        "is fine for start-up speed), or say in DYNAMIC_IMPORTS why it must be by name"
    )
    gone = sorted(set(DYNAMIC_IMPORTS) - set(found))
    assert not gone, f"no dynamic import left in {gone}: remove it from DYNAMIC_IMPORTS"


def test_the_architecture_document_shows_the_layers_of_the_contract() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    diagram = doc.split("## Layers", 1)[1].split("```", 2)[1]
    # a layer's line starts with one space; its description follows after two or more
    shown = [
        re.split(r"\s{2,}", line.strip())[0]
        for line in diagram.splitlines()
        if line.startswith(" ") and not line.startswith("  ")
    ]
    assert shown == layers
