"""The domain layers must be importable without a terminal UI (STYLE.md #1)."""

import subprocess
import sys

NON_UI_PACKAGES = [
    "simulator.domain",
    "simulator.db",
    "simulator.llm",
    "simulator.engine",
    "simulator.roles",
    "simulator.scenarios",
    "simulator.analysis",
    "simulator.settings",
    "simulator.cli",
]


def test_domain_layers_do_not_import_textual() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {NON_UI_PACKAGES!r}:\n"
        "    mod = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(getattr(mod, '__path__', []), name + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print('TEXTUAL' if bad else 'CLEAN', len(sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CLEAN"), "textual was imported by a non-UI layer"


def test_importing_roles_does_not_import_inflect() -> None:
    """inflect takes seconds to import (typeguard instruments it), so it is imported on the first
    render that needs inflection, not when the roles package (or the engine) is imported."""
    code = (
        "import sys\n"
        "import simulator.roles, simulator.engine.conversation, simulator.scenarios.dialogue\n"
        "print('before', 'inflect' in sys.modules)\n"
        "from simulator.roles import english\n"
        "print('plural', english.role_noun('Prison Guard', 2), english.number_word(3))\n"
        "print('after', 'inflect' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["before False", "plural prison guards three", "after True"]
