"""The annotations package is a non-UI layer: importable without a terminal UI (STYLE.md #1)."""

import subprocess
import sys


def test_annotations_do_not_import_textual() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import simulator.annotations as mod\n"
        "for info in pkgutil.walk_packages(mod.__path__, 'simulator.annotations.'):\n"
        "    importlib.import_module(info.name)\n"
        "import simulator.scenarios.dialogue.interview, simulator.commands.annotate\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print('TEXTUAL' if bad else 'CLEAN')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CLEAN"), "textual was imported by the annotations layer"
