"""Shared pytest fixtures of the tui runs tests (registered in tests/conftest.py)."""

from __future__ import annotations
