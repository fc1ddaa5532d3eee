"""One ``ast.parse`` at a time in the whole process: CPython 3.11 cannot run two at once.

Turning source into Python AST objects (``ast.parse``, ``ast.literal_eval``, ``inspect`` and
typeguard all go through it) keeps a recursion counter in per-interpreter state, not per thread
(CPython gh-106905; the Python 3.11 this app runs on has it). Building the objects allocates, an
allocation may run the garbage collector, the collector may run Python code, and Python code may
hand the GIL to another thread; when that thread parses too, both counters mix and one of them
fails with ``SystemError: AST constructor recursion depth mismatch``.

The app parsed in two threads: Textual parses action strings such as ``tab('tab-roles')`` with
``ast.literal_eval`` on the event loop, while a warm-up thread imported ``inflect``, whose
``@typechecked`` methods make typeguard parse inflect's whole module once per method (23 parses).
Inflect is now imported before any thread starts, without that instrumentation
(``simulator.roles.preload``), but other imports still run in threads (a game's scenario, pandas)
and any library may parse. Rather than hope that nothing parses meanwhile, ``install()`` wraps
``ast.parse`` in one lock: a parse then never runs while another is half done, whatever thread
or library asks for it. A caller waits at most for one parse in flight.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

_LOCK = threading.RLock()  # re-entrant: a collector run inside a parse may parse again
_ORIGINAL_PARSE = ast.parse


def _locked_parse(*args: Any, **kwargs: Any) -> Any:
    with _LOCK:
        return _ORIGINAL_PARSE(*args, **kwargs)


_locked_parse.__doc__ = _ORIGINAL_PARSE.__doc__
_locked_parse.__wrapped__ = _ORIGINAL_PARSE  # type: ignore[attr-defined]


def install() -> None:
    """Serialise every ``ast.parse`` of the process (idempotent; a lock costs nothing where the
    interpreter would not need it). Call it in the main thread before other threads start."""
    # ast.literal_eval and inspect look ``parse`` up in the ast module at each call.
    ast.parse = _locked_parse  # type: ignore[assignment]


def installed() -> bool:
    return ast.parse is _locked_parse
