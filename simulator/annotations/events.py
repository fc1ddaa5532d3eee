"""Progress events of an annotation job, carried by the engine's ``EventBus`` to the CLI's
progress line, the TUI and tests (like ``BatchProgress`` for batches)."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.domain.annotations import Annotation


@dataclass(frozen=True)
class AnnotationStarted:
    job_id: str
    annotator: str
    version: str
    conversations: int
    items: int  # every item of the selection
    stored: int  # items whose annotations were all stored before this job
    todo: int  # items this job annotates


@dataclass(frozen=True)
class AnnotationsStored:
    """One batch of items annotated and stored (or found stored by another writer)."""

    job_id: str
    done: int  # items finished by this job so far
    failed: int
    todo: int
    annotations: tuple[Annotation, ...] = field(default_factory=tuple)  # the new ones


@dataclass(frozen=True)
class AnnotationFailed:
    job_id: str
    items: int  # items of the failed batch
    error: str
    done: int = 0  # the job's counts so far
    failed: int = 0


@dataclass(frozen=True)
class AnnotationFinished:
    job_id: str
    done: int
    failed: int
    todo: int
    cancelled: bool = False


__all__ = ["AnnotationFailed", "AnnotationFinished", "AnnotationStarted", "AnnotationsStored"]
