"""Shared pytest fixtures of the tui browser tests (registered in tests/conftest.py)."""

from __future__ import annotations
