"""Annotations of transcripts: LLM judges with a researcher's rubric, scorers (OpenAI's
moderation endpoint, Python functions plugged in by entry point or dotted path) and interviews
of agents after a run, produced like batches (idempotent, resumable, concurrent) and stored in
the ``annotations`` collection, keyed by conversation, message (or the whole conversation, or an
agent), annotator, annotator version and question. See docs/annotations.md.

Modules: ``base`` (the ``Annotator`` protocol), ``runner`` (jobs), ``judge`` and ``rubric``,
``moderation``, ``scorers``, ``interview``, ``tables`` (exports, pandas), ``service`` (what the
CLI and the TUI share), ``events`` (progress).
"""

from simulator.annotations.base import AnnotationError, Annotator, Item
from simulator.annotations.runner import AnnotationRunner, JobReport, Plan
from simulator.annotations.service import AnnotationService, AnnotatorSpec, build_annotator

__all__ = [
    "AnnotationError",
    "AnnotationRunner",
    "AnnotationService",
    "Annotator",
    "AnnotatorSpec",
    "Item",
    "JobReport",
    "Plan",
    "build_annotator",
]
