"""``inflect`` imported in a tenth of a second instead of seconds, for every program that
renders prompts (the command line's ``run``, ``batch`` and ``validate``, the app, the workers).

``inflect`` (number words and plurals of the prompts) decorates its methods with typeguard's
``@typechecked``, and typeguard instruments each of them at import time by parsing inflect's
whole module again: about 30 parses, 3-4 seconds on a busy 2-core machine. Imported in a
warm-up thread, those seconds held the GIL while the screen tried to draw (the first editor took
5.8 s to open in the walkthrough), and they raced Textual's own parsing on the event loop
(CPython 3.11's AST race: ``ast_guard``).

The first inflection (``simulator.roles.english``) imports it through here, so a command that
renders a prompt pays 0.1 s, not seconds; the app calls ``preload()`` in its main thread before
its own threads start.

``preload()`` imports inflect with ``typechecked`` briefly replaced by a decorator that leaves
the function as it is: the same module, the same results, in about 0.1 s, and no parsing at all.
What the app gives up is typeguard's run-time check of the arguments inflect receives: a wrong
argument then fails in inflect's own code (an exception either way; the app passes strings and
numbers it has checked already). The substitute is in place only while inflect is imported.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any


def _leave_as_is(target: Any = None, **_options: Any) -> Any:
    """``@typechecked`` and ``@typechecked(...)`` that return the function unchanged."""
    if target is None:
        return lambda function: function
    return target


_lock = threading.Lock()  # two threads swapping typechecked at once could leave it swapped


def preload() -> None:
    """Import inflect, uninstrumented, once (a no-op when it is imported already); safe from
    any thread."""
    if "inflect" in sys.modules:
        return
    with _lock:
        _import()


def _import() -> None:
    if "inflect" in sys.modules:
        return
    try:
        typeguard: Any = importlib.import_module("typeguard")
    except ImportError:  # an inflect without typeguard: nothing to skip
        importlib.import_module("inflect")
        return
    original: Callable[..., Any] = typeguard.typechecked
    typeguard.typechecked = _leave_as_is
    try:
        importlib.import_module("inflect")
    finally:
        typeguard.typechecked = original
