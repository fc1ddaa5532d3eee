"""Shared pytest fixtures of the commons tests (registered in tests/conftest.py)."""
