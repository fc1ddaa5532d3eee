"""Setting up a batch: the grid a researcher asks for, checked, counted and estimated before
anything is stored. The TUI's batch setup and ``simulator run`` both plan here.

``plan_batch(experiment, fields)`` takes what a form collected, keyed by ``BatchSpec``'s own
field names (the text typed for numbers; the model set chosen with ``choose_models``), and
returns a ``BatchPlan``: the spec with its cells and estimate, or every problem under the field
it belongs to. ``plan_spec(experiment, spec)`` plans a spec built elsewhere (a spec file). The
numbers are bounded by ``domain.models.BOUNDS``, the grid by ``MAX_CELLS`` (counted by
multiplication: ``engine.grid.check_grid_size``, nothing expanded first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from simulator.domain import (
    BatchSpec,
    Estimate,
    Experiment,
    ExperimentKind,
    GridCell,
    ModelRef,
    ModelSet,
    Provider,
    SpeakerSelection,
)
from simulator.domain.errors import SpecError
from simulator.domain.models import BOUNDS, MAX_CELLS, bound_message, bound_text
from simulator.engine.batch import check_cost_cap
from simulator.engine.grid import Prices, check_grid_size, estimate_cells, expand_grid, grid_size
from simulator.engine.ledger import MeasuredRates

#: The key of a problem that belongs to no single field (the grid, the experiment).
GRID = "grid"


def max_agents_key(role: str) -> str:
    """The problem key of a role's maximum number of agents."""
    return f"max_agents.{role}"


@dataclass
class BatchPlan:
    """A checked batch: the spec, its cells and what they cost; or the problems, by field."""

    spec: BatchSpec | None = None
    cells: list[GridCell] = field(default_factory=list)
    estimate: Estimate | None = None
    problems: dict[str, str] = field(default_factory=dict)  # BatchSpec field (or GRID) -> why
    grid: str = ""  # "1 model set x 2 agent counts x ..."

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems

    @property
    def only_dryrun(self) -> bool:
        """Every model of every cell is the offline dryrun backend: it costs nothing."""
        for cell in self.cells:
            ms = cell.models
            refs = [ms.default, *ms.per_role.values(), ms.summarizer_model, ms.manager_model]
            if any(r.provider is not Provider.dryrun for r in refs):
                return False
        return True


def models_of(experiment: Experiment) -> list[ModelRef]:
    """The models a batch of ``experiment`` can choose from (dryrun when it names none)."""
    return list(experiment.models) or [ModelRef()]


def choose_models(
    experiment: Experiment,
    default: int | None = 0,
    per_role: Mapping[str, int | None] | None = None,
    summarizer: int | None = None,
    manager: int | None = None,
) -> ModelSet:
    """The model set of positions in ``models_of(experiment)`` (None: the default model)."""
    refs = models_of(experiment)

    def ref(index: int | None) -> ModelRef | None:
        return None if index is None or not 0 <= index < len(refs) else refs[index]

    chosen = {role: m for role, i in (per_role or {}).items() if (m := ref(i)) is not None}
    return ModelSet(
        default=ref(default) or refs[0],
        per_role=chosen,
        summarizer=ref(summarizer),
        manager=ref(manager),
    )


def _whole(value: object, key: str, problems: dict[str, str], bound: str) -> int | None:
    """``value`` (typed text, or a number) as a whole number within ``BOUNDS[bound]``, or None
    with the problem (and the accepted range) under ``key``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number: int | None = value
        text = str(value)
    else:
        text = str(value if value is not None else "").strip().replace("_", "")
        # A length check first: int() of a very long digit string is slow, and refused anyway.
        try:
            number = int(text) if len(text) <= 24 else None
        except ValueError:
            number = None
    low, high = BOUNDS[bound]
    if number is None or not low <= number <= high:
        if not text:
            problems[key] = f"a whole number {bound_text(bound)} is needed"
        else:
            problems[key] = bound_message(bound, text if number is None else number)
        return None
    return number


def _cap(value: object, problems: dict[str, str]) -> float | None:
    """A cost cap (``max_cost_usd``): empty for none, else a number within its bounds (``$``
    and thousands separators allowed), or None with the problem."""
    text = str(value if value is not None else "").strip()
    text = text.replace("_", "").replace(",", "").removeprefix("$")
    if not text:
        return None
    low, high = BOUNDS["max_cost_usd"]
    try:
        number = float(text) if len(text) <= 24 else None
    except ValueError:
        number = None
    if number is None or number != number or not low <= number <= high:
        problems["max_cost_usd"] = bound_message("max_cost_usd", text if number is None else number)
        return None
    return number


def plan_batch(
    experiment: Experiment,
    fields: Mapping[str, object],
    prices: Prices | None = None,
    *,
    max_cells: int = MAX_CELLS,
    measured: MeasuredRates | None = None,
) -> BatchPlan:
    """Check a form's ``fields`` (``BatchSpec`` field names; numbers as typed) against the
    experiment. Missing fields take ``BatchSpec``'s defaults; ``max_agents`` maps each role to
    its typed maximum (1 when missing); ``speaker_selection`` is one method or a list of them
    (each a level of the grid). Every problem is reported, each under its field
    (``max_agents.<role>`` for a role's maximum, ``GRID`` for the grid and the experiment)."""
    problems: dict[str, str] = {}
    defaults = BatchSpec.model_fields
    dialogue = experiment.kind is ExperimentKind.dialogue

    def number(name: str) -> int | None:
        return _whole(fields.get(name, defaults[name].default), name, problems, name)

    total = number("total_messages") if dialogue else 1
    days = number("days") if dialogue else 1
    if dialogue and total is not None and days is not None and days > total:
        problems["days"] = (
            f"at most the total messages ({total}): every day needs at least one message"
        )
    typed_maxima = fields.get("max_agents") or {}
    assert isinstance(typed_maxima, Mapping)
    maxima: dict[str, int] = {}
    for role in experiment.roles:
        key = max_agents_key(role.name)
        n = _whole(typed_maxima.get(role.name, 1), key, problems, "max_agents")
        if n is not None:
            maxima[role.name] = n
    repeats, seed, concurrency = number("repeats"), number("seed"), number("concurrency")
    rounds = None
    typed_rounds = fields.get("rounds")
    if not dialogue and typed_rounds is not None and str(typed_rounds).strip():
        rounds = _whole(typed_rounds, "rounds", problems, "rounds")
    max_cost = _cap(fields.get("max_cost_usd"), problems)  # budget caps (docs/cost.md)
    max_tokens = None
    typed_tokens = fields.get("max_total_tokens")
    if typed_tokens is not None and str(typed_tokens).strip():  # empty: no cap
        max_tokens = _whole(typed_tokens, "max_total_tokens", problems, "max_total_tokens")
    if not experiment.roles:
        problems[GRID] = "the experiment has no roles: add some in the editor first"
    else:
        from simulator.roles import validate_experiment

        issues = validate_experiment(experiment)
        if issues:  # every conversation would fail to prepare
            problems[GRID] = "fix these placeholders in the editor first:\n" + "\n".join(
                str(i) for i in issues
            )
    model_sets = fields.get("model_sets") or [choose_models(experiment)]
    assert isinstance(model_sets, list)
    # One method or several (each a level of the grid: every cell runs one of them).
    speakers = fields.get("speaker_selection", [SpeakerSelection.round_robin])
    methods = list(speakers) if isinstance(speakers, list | tuple) else [speakers]
    if not methods:
        problems["speaker_selection"] = "choose at least one method"
    plan = BatchPlan(problems=problems)
    if problems:
        return plan
    assert total is not None and days is not None and repeats is not None
    assert seed is not None and concurrency is not None
    try:
        spec = BatchSpec(
            experiment_id=experiment.id,
            model_sets=model_sets,
            total_messages=total,
            days=days,
            every_day_count=bool(fields.get("every_day_count", False)),
            max_agents=maxima,
            every_combination=bool(fields.get("every_combination", True)),
            speaker_selection=[SpeakerSelection(str(m)) for m in methods],
            repeats=repeats,
            seed=seed,
            concurrency=concurrency,
            rounds=rounds,
            max_cost_usd=max_cost,
            max_total_tokens=max_tokens,
        )
    except ValueError as exc:  # pydantic's ValidationError: a value no field above checks
        problems[GRID] = str(exc)
        return plan
    return _planned(plan, experiment, spec, prices, max_cells, measured)


def plan_spec(
    experiment: Experiment,
    spec: BatchSpec,
    prices: Prices | None = None,
    *,
    max_cells: int = MAX_CELLS,
    measured: MeasuredRates | None = None,
) -> BatchPlan:
    """Count, check and estimate a spec built elsewhere (a spec file); its problems are in the
    plan's ``GRID`` entry. ``measured``: answer lengths learnt from earlier batches
    (``engine.ledger.learned_rates``)."""
    return _planned(BatchPlan(), experiment, spec, prices, max_cells, measured)


def _planned(
    plan: BatchPlan,
    experiment: Experiment,
    spec: BatchSpec,
    prices: Prices | None,
    max_cells: int,
    measured: MeasuredRates | None = None,
) -> BatchPlan:
    try:
        plan.grid = grid_size(experiment, spec).words
        check_grid_size(experiment, spec, max_cells)  # by multiplication: nothing expanded yet
        plan.cells = expand_grid(experiment, spec)
        plan.estimate = estimate_cells(experiment, plan.cells, prices or None, measured=measured)
        try:
            check_cost_cap(spec, plan.cells, prices or None)
        except SpecError as exc:  # under its field: a cost cap needs every model priced
            plan.problems["max_cost_usd"] = str(exc).removeprefix("batch.max_cost_usd: ")
            return plan
    except SpecError as exc:
        plan.problems[GRID] = str(exc).removeprefix("batch: ")
        return plan
    plan.spec = spec
    return plan


def prepare_kind(kind: ExperimentKind) -> None:
    """Import what plans and runs of ``kind`` need (a game's scenario: its call estimator,
    networkx for reputation), so the first plan does not pay for it. Slow: call it in a
    thread."""
    from simulator.scenarios.registry import KINDS

    KINDS.prepare(kind)


__all__ = [
    "GRID",
    "BatchPlan",
    "choose_models",
    "max_agents_key",
    "models_of",
    "plan_batch",
    "plan_spec",
    "prepare_kind",
]
