"""Screen styles live in .tcss files (STYLE.md #12): a screen loads its own through CSS_PATH;
only reusable, self-contained widgets keep DEFAULT_CSS."""

from __future__ import annotations

import ast
from pathlib import Path

TUI = Path(__file__).resolve().parents[1] / "simulator" / "tui"


def _class_strings(path: Path, name: str) -> list[tuple[str, str | None]]:
    """(class, value) of every class attribute ``name`` in ``path`` (value when a string)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == name for t in item.targets
                ):
                    value = item.value
                    text = value.value if isinstance(value, ast.Constant) else None
                    found.append((node.name, text if isinstance(text, str) else None))
    return found


def test_screens_keep_their_styles_in_tcss_files() -> None:
    for path in sorted((TUI / "screens").glob("*.py")):
        for attr in ("DEFAULT_CSS", "CSS"):
            assert not _class_strings(path, attr), f"{path.name}: move {attr} to a .tcss file"
        for cls, css_path in _class_strings(path, "CSS_PATH"):
            assert css_path is not None and (path.parent / css_path).is_file(), (cls, css_path)


def test_every_tcss_file_is_used() -> None:
    used = {"app.tcss"}
    for path in TUI.rglob("*.py"):
        used |= {css for _, css in _class_strings(path, "CSS_PATH") if css}
    assert {p.name for p in TUI.rglob("*.tcss")} <= used
