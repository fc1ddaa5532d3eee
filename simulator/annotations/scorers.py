"""Python scorers: a function from a list of texts to a list of dicts of scores, plugged in by
entry point (group ``simulator.scorers``) or by dotted path ``package.module:function``.

``simulator annotate python:toxigen`` looks up the entry point named ``toxigen``;
``simulator annotate python:mylab.scores:toxicity`` imports ``mylab.scores`` and calls its
``toxicity``. The function receives up to ``batch_size`` texts (the messages' content) and returns
one dict per text, ``{score name: number}``; it runs in a worker thread (a classifier does not
hold up the app), one batch at a time unless it says otherwise. Optional attributes of the
function: ``version`` (else its module's ``__version__``, else "0"; change it when the scores
change), ``batch_size`` (default 32) and ``concurrency`` (batches at once, default 1). An ``async``
function is awaited instead.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from simulator.annotations.base import AnnotationError, Item, entries_for, make_annotation
from simulator.domain import Conversation, Message, ModelRef
from simulator.domain.annotations import Annotation, AnnotatorEntry, Target

ENTRY_POINT_GROUP = "simulator.scorers"
DEFAULT_BATCH = 32

Scorer = Callable[[list[str]], Any]


def resolve_scorer(spec: str) -> Scorer:
    """The function named by ``spec``: ``package.module:function`` or an entry point's name."""
    spec = spec.strip()
    if not spec:
        raise AnnotationError(
            "python: name a scorer, as python:package.module:function or python:<entry point>"
        )
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise AnnotationError(
                f"python:{spec}: cannot import {module_name!r} ({exc}); is the package "
                "installed in this environment, or on PYTHONPATH?"
            ) from None
        for part in attr.split("."):
            if not hasattr(target, part):
                raise AnnotationError(f"python:{spec}: {module_name} has no {attr!r}")
            target = getattr(target, part)
    else:
        found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not found:
            known = sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
            listed = ", ".join(known) if known else "none installed"
            raise AnnotationError(
                f"python:{spec}: no scorer of that name in the entry point group "
                f"{ENTRY_POINT_GROUP!r} (installed: {listed}); or give package.module:function"
            )
        try:
            target = found[0].load()
        except Exception as exc:
            raise AnnotationError(
                f"python:{spec}: the entry point {found[0].value!r} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
    if not callable(target):
        raise AnnotationError(f"python:{spec} is not a function")
    return target  # type: ignore[no-any-return]


def _version(fn: Scorer) -> str:
    version = getattr(fn, "version", None)
    if version is None:
        module = inspect.getmodule(fn)
        version = getattr(module, "__version__", None)
    return str(version) if version is not None else "0"


class PythonScorer:
    """A Python scorer behind the ``Annotator`` protocol (see the module docstring)."""

    kind = "python"

    def __init__(self, spec: str, *, kinds: tuple[str, ...] = ("utterance",)) -> None:
        self.spec = spec.strip()
        self.fn = resolve_scorer(self.spec)
        self.name = f"python:{self.spec}"
        self.version = _version(self.fn)
        self.batch_size = max(1, int(getattr(self.fn, "batch_size", DEFAULT_BATCH)))
        self.concurrency: int | None = max(1, int(getattr(self.fn, "concurrency", 1)))
        self.kinds = tuple(kinds)

    def entries(self, experiment_id: str) -> list[AnnotatorEntry]:
        doc = (inspect.getdoc(self.fn) or "").split("\n", 1)[0]
        return entries_for(self, experiment_id, [(None, Target.message, doc or self.spec)])

    def models(self) -> list[ModelRef]:
        return []

    async def items(self, conversation: Conversation, messages: list[Message]) -> list[Item]:
        return [
            Item(conversation, seq=m.seq, payload=m) for m in messages if m.kind.value in self.kinds
        ]

    async def annotate(self, items: list[Item]) -> list[list[Annotation]]:
        texts = [item.payload.content for item in items]
        start = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(self.fn):
                result = await self.fn(texts)
            else:
                result = await asyncio.to_thread(self.fn, texts)
        except Exception as exc:
            raise AnnotationError(
                f"{self.name} raised {type(exc).__name__}: {exc}", title="Scorer failed"
            ) from exc
        latency = (time.perf_counter() - start) * 1000 / max(1, len(items))
        rows = self._checked(result, len(texts))
        return [
            [make_annotation(self, item, scores=scores, latency_ms=latency)]
            for item, scores in zip(items, rows, strict=True)
        ]

    def _checked(self, result: Any, n: int) -> list[dict[str, float]]:
        expected = f"a list of {n} dicts of numbers (one per text)"
        if not isinstance(result, list | tuple) or len(result) != n:
            raise AnnotationError(
                f"{self.name} returned {_shape(result)} for {n} text(s); expected {expected}",
                title="Scorer failed",
            )
        rows: list[dict[str, float]] = []
        for i, row in enumerate(result):
            if not isinstance(row, Mapping):
                raise AnnotationError(
                    f"{self.name}: item {i} is {_shape(row)}; expected {expected}",
                    title="Scorer failed",
                )
            scores: dict[str, float] = {}
            for key, value in row.items():
                name = str(key)
                if not name or "." in name or name.startswith("$"):
                    raise AnnotationError(
                        f"{self.name}: score name {name!r} cannot be stored (no dots, no "
                        "leading $)",
                        title="Scorer failed",
                    )
                if not isinstance(value, int | float):
                    raise AnnotationError(
                        f"{self.name}: score {name!r} of item {i} is {value!r}, not a number",
                        title="Scorer failed",
                    )
                scores[name] = float(value)
            rows.append(scores)
        return rows


def _shape(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


__all__ = ["ENTRY_POINT_GROUP", "PythonScorer", "resolve_scorer"]
