"""Shared pytest fixtures of the tui tests (registered in tests/conftest.py)."""
