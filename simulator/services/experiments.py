"""The experiment library: list, create, edit (as new versions once run), duplicate, delete,
import and export, with ownership and placeholder validation in one place."""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from pathlib import Path

from simulator.db.store import ExperimentFilter, Store
from simulator.domain import Experiment, new_id, utcnow
from simulator.domain.errors import (
    NotFoundError,
    PermissionDeniedError,
    SpecError,
    StaleVersionError,
)
from simulator.roles import PlaceholderIssue, validate_experiment
from simulator.services.files import read_experiment, write_experiment
from simulator.services.ownership import is_owner, require_owner, server_permission

log = logging.getLogger(__name__)

DUPLICATE_HINT = "Duplicate it to get your own copy."


@dataclass(frozen=True)
class ExperimentRow:
    """One line of the library: the experiment and how many conversations ran on it."""

    experiment: Experiment
    conversations: int


class PlaceholderError(SpecError):
    """An experiment whose placeholders do not validate; ``issues`` lists every problem."""

    title = "Invalid placeholders"

    def __init__(self, name: str, issues: builtins.list[PlaceholderIssue]) -> None:
        lines = "\n".join(f"  {i}" for i in issues)
        n = len(issues)
        super().__init__(
            f"Experiment {name!r} has {n} placeholder problem{'s' if n != 1 else ''}:\n{lines}"
        )
        self.issues = issues


def check_placeholders(experiment: Experiment) -> None:
    issues = validate_experiment(experiment)
    if issues:
        raise PlaceholderError(experiment.name, issues)


def latest_versions(experiments: builtins.list[Experiment]) -> dict[str, Experiment]:
    """For each experiment that a newer version of it supersedes, that latest version.

    Saving an experiment that has conversations stores a new version: a new experiment with
    ``parent_id`` = the old one, the same owner and a higher ``version``. A duplicate or a copy
    of someone else's experiment also has a ``parent_id``, but starts again at version 1 or has
    another owner: it is a new experiment, not a version. Where two versions branch from one,
    the highest version (then the newest) is the latest.
    """
    successors: dict[str, builtins.list[Experiment]] = {}
    by_id = {e.id: e for e in experiments}
    for exp in experiments:
        parent = by_id.get(exp.parent_id or "")
        if parent is not None and exp.owner == parent.owner and exp.version > parent.version:
            successors.setdefault(parent.id, []).append(exp)
    latest: dict[str, Experiment] = {}
    for exp in experiments:
        current, seen = exp, {exp.id}
        while current.id in successors:
            current = max(successors[current.id], key=lambda e: (e.version, e.created_at))
            if current.id in seen:  # a cycle in stored data: stop rather than loop
                break
            seen.add(current.id)
        if current.id != exp.id:
            latest[exp.id] = current
    return latest


def check_kind(experiment: Experiment) -> None:
    """SpecError when this version of the simulator knows no kind of that name (the domain
    only checks that it is one: kinds are registered in simulator/scenarios/registry.py)."""
    from simulator.scenarios.registry import KINDS

    KINDS.check_kind(experiment.kind, where=f"experiment {experiment.name!r}: kind")


class ExperimentService:
    def __init__(self, store: Store, user: str) -> None:
        self.store = store
        self.user = user

    # ------------------------------------------------------------------ reading

    async def list(self, flt: ExperimentFilter | None = None) -> builtins.list[ExperimentRow]:
        experiments = await self.store.experiments.list(flt)
        counts = await self.store.experiments.count_conversations([e.id for e in experiments])
        return [ExperimentRow(e, counts.get(e.id, 0)) for e in experiments]

    async def get(self, experiment_id: str) -> Experiment:
        experiment = await self.store.experiments.get(experiment_id)
        if experiment is None:
            raise NotFoundError(
                f"No experiment {experiment_id} (it may have been deleted). "
                "List them with 'simulator experiments list'."
            )
        return experiment

    async def find(self, ref: str) -> Experiment:
        """An experiment by id, unique id prefix (at least 4 characters) or exact name
        (``db.ids.resolve_experiment``: the one resolver of every command)."""
        from simulator.db.ids import resolve_experiment

        return await resolve_experiment(self.store, ref, self.user)

    async def latest_version(self, experiment: Experiment) -> Experiment:
        """The latest version of ``experiment`` (itself when no newer one is stored)."""
        return latest_versions(await self.store.experiments.list()).get(experiment.id, experiment)

    def can_edit(self, experiment: Experiment) -> bool:
        """Whether the current user may edit or delete it (for enabling UI actions)."""
        return is_owner(experiment.owner, self.user)

    # ------------------------------------------------------------------ writing

    async def create(self, experiment: Experiment) -> Experiment:
        """Store a new experiment owned by the current user (its kind and placeholders
        validated first)."""
        check_kind(experiment)
        check_placeholders(experiment)
        now = utcnow()
        mine = experiment.model_copy(
            update={"owner": self.user, "created_at": now, "updated_at": now}
        )
        with server_permission("create", f"experiment {experiment.name!r}"):
            stored = await self.store.experiments.create(mine)
        if stored.owner != self.user:  # the id exists already (someone else's): never adopt it
            raise PermissionDeniedError(
                f"An experiment with id {stored.id} already exists and belongs to "
                f"{stored.owner or 'no one'}; duplicate it instead of creating it again."
            )
        log.info("experiment %s (%s) created by %s", stored.id, stored.name, self.user)
        return stored

    async def save(self, experiment: Experiment) -> Experiment:
        """Save an edit (owner only). An experiment with conversations is never changed under
        them: the edit is stored as a new version (new id, ``parent_id`` = the old id)."""
        stored = await self.get(experiment.id)
        require_owner(
            stored.owner, self.user, "edit", f"experiment {stored.name!r}", hint=DUPLICATE_HINT
        )
        check_kind(experiment)
        check_placeholders(experiment)
        if experiment.version != stored.version:
            raise StaleVersionError(
                f"Experiment {stored.name!r} was changed elsewhere (stored version "
                f"{stored.version}, yours is based on version {experiment.version}); reload it "
                "and apply your changes again."
            )
        experiment = experiment.model_copy(update={"owner": stored.owner})
        runs = (await self.store.experiments.count_conversations([stored.id])).get(stored.id, 0)
        if runs:
            now = utcnow()
            version = experiment.model_copy(
                update={
                    "id": new_id(),
                    "parent_id": stored.id,
                    "version": stored.version + 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            with server_permission("save", f"experiment {stored.name!r}"):
                created = await self.store.experiments.create(version)
            log.info(
                "experiment %s has %d conversations: saved the edit as new version %s",
                stored.id,
                runs,
                created.id,
            )
            return created
        with server_permission("save", f"experiment {stored.name!r}"):
            return await self.store.experiments.update(experiment)

    async def duplicate(self, experiment_id: str, name: str | None = None) -> Experiment:
        """Copy anyone's experiment into the current user's library."""
        await self.get(experiment_id)
        with server_permission("duplicate", f"experiment {experiment_id}"):
            copy = await self.store.experiments.duplicate(experiment_id, self.user, name)
        log.info("experiment %s duplicated as %s by %s", experiment_id, copy.id, self.user)
        return copy

    async def delete(self, experiment_id: str) -> None:
        """Delete an experiment with its batches, conversations and messages (owner only)."""
        stored = await self.get(experiment_id)
        require_owner(stored.owner, self.user, "delete", f"experiment {stored.name!r}")
        with server_permission("delete", f"experiment {stored.name!r}"):
            await self.store.experiments.delete(experiment_id)
        log.info("experiment %s (%s) deleted by %s", stored.id, stored.name, self.user)

    async def set_note(self, experiment_id: str, note: str) -> Experiment:
        stored = await self.get(experiment_id)
        require_owner(stored.owner, self.user, "edit the note of", f"experiment {stored.name!r}")
        with server_permission("edit the note of", f"experiment {stored.name!r}"):
            await self.store.experiments.set_fields(experiment_id, note=note)
        return stored.model_copy(update={"note": note})

    async def toggle_favourite(self, experiment_id: str) -> Experiment:
        stored = await self.get(experiment_id)
        require_owner(stored.owner, self.user, "mark as favourite", f"experiment {stored.name!r}")
        with server_permission("mark as favourite", f"experiment {stored.name!r}"):
            await self.store.experiments.set_fields(experiment_id, favourite=not stored.favourite)
        return stored.model_copy(update={"favourite": not stored.favourite})

    # ------------------------------------------------------------------ files

    async def export(self, experiment_id: str, path: Path) -> Path:
        """Write the experiment's definition to ``path`` (YAML, or JSON for ``.json``)."""
        return write_experiment(await self.get(experiment_id), Path(path))

    async def import_file(self, path: Path) -> Experiment:
        """Read an experiment file and store it as a new experiment of the current user."""
        experiment = read_experiment(Path(path))
        return await self.create(experiment.model_copy(update={"id": new_id()}))

    async def ensure_examples(self) -> builtins.list[Experiment]:
        """Add the built-in examples when the library is empty (a first start)."""
        if await self.store.experiments.list():
            return []
        from simulator.engine.spec import load_example
        from simulator.examples import example_names

        return [await self.create(load_example(name)) for name in example_names()]
