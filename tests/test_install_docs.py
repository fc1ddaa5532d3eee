"""The README's first block and what CI runs agree, and the installer's options are checked
before it touches anything."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_block_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def test_ci_runs_exactly_the_readmes_development_install_and_tests() -> None:
    commands = first_block_commands()
    assert commands[:2] == ["bash scripts/install.sh --app", ".venv/bin/python main.py"]
    dev = commands[2:]
    assert dev == ["bash scripts/install.sh", ".venv/bin/python -m pytest"]
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == dev


def test_the_installer_refuses_an_unknown_option_before_doing_anything(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "install.sh"
    done = subprocess.run(
        ["bash", str(script), "--ap"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "unknown option: --ap" in done.stderr and "--app" in done.stderr
    shown = subprocess.run(
        ["bash", str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0 and "--app" in shown.stdout and "no compiler" in shown.stdout
