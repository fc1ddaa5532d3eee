"""mypy in strict mode on the packages below the UI (domain, roles, llm, db, engine, services),
with the configuration in pyproject.toml: no error, so the types mean what they say (the Store
protocol is satisfied by MongoStore, the services are typed, no parameter is ``Any`` where a
real type exists). The cache in .mypy_cache makes a run after the first take seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRICT = ["domain", "roles", "llm", "db", "engine", "services"]


def test_strict_mypy_finds_nothing_in_the_core_packages() -> None:
    packages = [arg for name in STRICT for arg in ("-p", f"simulator.{name}")]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *packages],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_the_strict_packages_are_the_ones_configured() -> None:
    """The test and pyproject.toml name the same packages, all of them strict."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    (strict,) = [o for o in config["overrides"] if o.get("disallow_untyped_defs")]
    assert sorted(strict["module"]) == sorted(f"simulator.{n}.*" for n in STRICT)
    flags = (
        "disallow_any_generics",
        "disallow_subclassing_any",
        "disallow_untyped_calls",
        "disallow_untyped_defs",
        "disallow_incomplete_defs",
        "check_untyped_defs",
        "disallow_untyped_decorators",
        "warn_unused_ignores",
        "warn_return_any",
        "no_implicit_reexport",
        "strict_equality",
        "extra_checks",
    )
    assert all(strict.get(flag) is True for flag in flags)
    assert config.get("warn_redundant_casts") is True  # the one --strict flag that is global
