"""Shared pytest fixtures of the reputation tests (registered in tests/conftest.py)."""
