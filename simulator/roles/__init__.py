"""Placeholder grammar and prompt rendering (inflect): pure functions."""
