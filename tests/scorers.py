"""Tiny Python scorers for the tests (and the docs' rehearsal): functions from a list of texts to
one dict of scores per text, plugged in by dotted path (``python:tests.scorers:lengths``) or by
an entry point of the group ``simulator.scorers``."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

__version__ = "0.1"


def lengths(texts: list[str]) -> list[dict[str, float]]:
    """Characters and words of each message."""
    return [{"chars": len(t), "words": len(t.split())} for t in texts]


lengths.version = "1"  # type: ignore[attr-defined]
lengths.batch_size = 4  # type: ignore[attr-defined]


def shouting(texts: list[str]) -> list[dict[str, float]]:
    """Share of upper-case letters (no version attribute: the module's __version__ counts)."""
    out = []
    for t in texts:
        letters = [c for c in t if c.isalpha()]
        out.append({"upper_share": sum(c.isupper() for c in letters) / max(1, len(letters))})
    return out


async def async_lengths(texts: list[str]) -> list[dict[str, float]]:
    """An async scorer is awaited on the loop."""
    await asyncio.sleep(0)
    return [{"chars": len(t)} for t in texts]


def wrong_count(texts: list[str]) -> list[dict[str, float]]:
    return [{"x": 1.0}]


def not_numbers(texts: list[str]) -> list[dict[str, Any]]:
    return [{"label": "toxic"} for _ in texts]


def raises(texts: list[str]) -> list[dict[str, float]]:
    raise RuntimeError("the classifier is not loaded")


THREADS: set[str] = set()


def thread_names(texts: list[str]) -> list[dict[str, float]]:
    """Records which thread ran it (scorers run off the event loop)."""
    THREADS.add(threading.current_thread().name)
    return [{"n": 1.0} for _ in texts]
