"""A batch request's grid: the cells it expands to, and what running them will cost.

``expand_grid`` is pure and deterministic: the same experiment and spec always give the same
cells in the same order. Each cell's seed is derived from the batch's base seed and the cell's
*content* (counts, days, models, factor levels, repeat ...), never from its position, so adding a
factor level or a model to a study does not change the seeds of the cells that were already there.

``estimate`` reports, before anything runs, how many conversations and LLM calls a batch makes and
roughly how many tokens they use (and their cost when a price table is given). Token figures are an
estimate from the prompt texts (about four characters per token) and an assumed reply length.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from simulator.domain import (
    BatchSpec,
    Estimate,
    Experiment,
    ExperimentKind,
    GridCell,
    Memory,
    ModelRef,
    Provider,
    SpeakerSelection,
)
from simulator.domain.errors import SpecError
from simulator.domain.models import MAX_CELLS
from simulator.engine.budget import day_budgets
from simulator.engine.rng import derive_seed

CHARS_PER_TOKEN = 4
REPLY_TOKENS = 150  # an utterance, when max_tokens does not bound it lower
SUMMARY_TOKENS = 250
MANAGER_PROMPT_TOKENS = 120
MANAGER_REPLY_TOKENS = 8
GAME_CALLS_PER_AGENT_ROUND = {ExperimentKind.commons: 3, ExperimentKind.reputation: 2}
GAME_DEFAULT_ROUNDS = {ExperimentKind.commons: 12, ExperimentKind.reputation: 10}
GAME_CONTEXT_TOKENS = 400  # game state and recent posts shown with every game call

Prices = Mapping[str, Mapping[str, float]]  # model -> {input_per_1k, output_per_1k}


# --------------------------------------------------------------------------- expansion


def count_combinations(experiment: Experiment, spec: BatchSpec) -> list[dict[str, int]]:
    """Agents per role: every combination 1..max per role, or only the maxima.

    Roles without a maximum have one agent. Order: the first role varies slowest.
    """
    maxima = _maxima(experiment, spec)
    if not spec.every_combination:
        return [dict(maxima)]
    names = list(maxima)
    ranges = [range(1, maxima[n] + 1) for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*ranges)]


def _maxima(experiment: Experiment, spec: BatchSpec) -> dict[str, int]:
    canonical: dict[str, int] = {}
    for role, n in spec.max_agents.items():
        try:
            canonical[experiment.role(role).name] = n
        except KeyError:
            raise SpecError(
                f"batch.max_agents.{role}: no role {role!r} in experiment {experiment.name!r}"
            ) from None
    return {r.name: canonical.get(r.name, 1) for r in experiment.roles}


def day_counts(spec: BatchSpec) -> list[int]:
    """Exactly ``days``, or every count 1..days."""
    return list(range(1, spec.days + 1)) if spec.every_day_count else [spec.days]


def factor_combinations(experiment: Experiment, spec: BatchSpec) -> list[dict[str, str]]:
    """Every combination of the experiment's factor levels, or the listed subset.

    A listed combination that leaves a factor out runs every level of that factor. Duplicates are
    dropped (first occurrence kept). With no factors there is one (empty) combination.
    """
    factors = experiment.factors
    if spec.factor_levels is None:
        names = [f.name for f in factors]
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(f.levels for f in factors))
        ]
    out: list[dict[str, str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    known = {f.name: f for f in factors}
    for i, listed in enumerate(spec.factor_levels):
        for name, level in listed.items():
            if name not in known:
                raise SpecError(f"batch.factors.{i}.{name}: no factor {name!r} in the experiment")
            if level not in known[name].levels:
                raise SpecError(
                    f"batch.factors.{i}.{name}: {level!r} is not a level of {name!r} "
                    f"(its levels: {', '.join(known[name].levels)})"
                )
        options = [[listed[f.name]] if f.name in listed else f.levels for f in factors]
        for combo in itertools.product(*options):
            levels = {f.name: lv for f, lv in zip(factors, combo, strict=True)}
            key = tuple(sorted(levels.items()))
            if key not in seen:
                seen.add(key)
                out.append(levels)
    return out


def count_factor_combinations(experiment: Experiment, spec: BatchSpec) -> int:
    """How many factor combinations ``factor_combinations`` gives, without listing them when
    there are many (then an upper bound, which is all the grid-size cap needs)."""
    levels = [len(f.levels) for f in experiment.factors]
    if spec.factor_levels is None:
        return math.prod(levels)
    bound = 0
    for listed in spec.factor_levels:
        omitted = [
            n for f, n in zip(experiment.factors, levels, strict=True) if f.name not in listed
        ]
        bound += math.prod(omitted)
    if bound > MAX_CELLS:
        return bound
    return len(factor_combinations(experiment, spec))


@dataclass(frozen=True)
class GridSize:
    """A grid's size, computed by multiplication (nothing is expanded)."""

    cells: int
    parts: tuple[tuple[int, str], ...]  # (count, what) per dimension

    @property
    def words(self) -> str:
        """``1 model set x 2 agent counts x 1 day count x 3 repeats``."""
        return " x ".join(f"{n:,} {label}{'s' if n != 1 else ''}" for n, label in self.parts)


def grid_size(experiment: Experiment, spec: BatchSpec) -> GridSize:
    """How many cells ``expand_grid`` would make: model sets x factor combinations x agent
    counts x day counts x repeats, multiplied (cheap for any spec, however large)."""
    maxima = _maxima(experiment, spec)
    counts = math.prod(maxima.values()) if spec.every_combination else 1
    parts = (
        (len(spec.model_sets), "model set"),
        (count_factor_combinations(experiment, spec), "factor combination"),
        (counts, "agent count"),
        (spec.days if spec.every_day_count else 1, "day count"),
        (spec.repeats, "repeat"),
    )
    return GridSize(math.prod(n for n, _ in parts), parts)


def check_grid_size(experiment: Experiment, spec: BatchSpec, max_cells: int = MAX_CELLS) -> int:
    """The number of cells; SpecError when it is above ``max_cells`` (default ``MAX_CELLS``)."""
    size = grid_size(experiment, spec)
    if size.cells > max_cells:
        raise SpecError(
            f"batch: {size.cells:,} conversations ({size.words}): at most {max_cells:,} in one "
            "batch; lower the maxima of agents, the day counts, the factor levels, the models "
            "or the repeats"
        )
    return size.cells


def cell_key(cell: GridCell) -> str:
    """A canonical text naming the cell's content (not its position): the seed's derivation path."""
    content = cell.model_dump(mode="json", exclude={"seed"})
    return json.dumps(content, sort_keys=True, separators=(",", ":"))


def expand_grid(experiment: Experiment, spec: BatchSpec) -> list[GridCell]:
    """The batch's cells, in a stable order: model set, factor levels, counts, days, repeat.

    Refuses (SpecError) a grid of more than ``MAX_CELLS`` cells before expanding anything."""
    if spec.days > spec.total_messages and experiment.kind is ExperimentKind.dialogue:
        raise SpecError(
            f"batch.days: at most total_messages ({spec.total_messages}): every day needs at "
            "least one message"
        )
    check_grid_size(experiment, spec)
    cells: list[GridCell] = []
    for models, levels, counts, days, repeat in itertools.product(
        spec.model_sets,
        factor_combinations(experiment, spec),
        count_combinations(experiment, spec),
        day_counts(spec),
        range(spec.repeats),
    ):
        cell = GridCell(
            counts=counts,
            days=days,
            total_messages=spec.total_messages,
            models=models,
            factors=levels,
            speaker_selection=spec.speaker_selection,
            repeat=repeat,
            rounds=spec.rounds,
        )
        cell.seed = derive_seed(spec.seed, "cell", cell_key(cell))
        cells.append(cell)
    return cells


# --------------------------------------------------------------------------- estimate


def _tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN) if text else 0


def _reply_tokens(ref: ModelRef, assumed: int) -> int:
    cap = ref.params.max_tokens
    return min(assumed, cap) if cap else assumed


def _prompt_tokens(experiment: Experiment, role: str, levels: dict[str, str]) -> int:
    text = "\n\n".join(f"{s.title}\n{s.content_for(levels)}" for s in experiment.sections_for(role))
    return _tokens(text)


class _Tally:
    """Calls and tokens per model, for totals and cost."""

    def __init__(self) -> None:
        self.calls = 0
        self.per_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.refs: dict[str, ModelRef] = {}

    def add(self, ref: ModelRef, prompt: int, completion: int, calls: int = 1) -> None:
        key = f"{ref.provider.value}:{ref.model}"
        self.refs[key] = ref
        self.calls += calls
        self.per_model[key][0] += prompt
        self.per_model[key][1] += completion

    @property
    def tokens(self) -> int:
        return sum(p + c for p, c in self.per_model.values())

    def cost(self, prices: Prices | None) -> float | None:
        if not prices:
            return None
        total = 0.0
        for key, (prompt, completion) in self.per_model.items():
            ref = self.refs[key]
            price = prices.get(key) or prices.get(ref.model)
            if price is None:
                if ref.provider is Provider.dryrun:
                    continue  # dryrun calls cost nothing
                return None  # a model without a price: no honest total
            total += prompt / 1000 * float(price.get("input_per_1k", 0.0))
            total += completion / 1000 * float(price.get("output_per_1k", 0.0))
        return round(total, 4)


def _tally_dialogue(experiment: Experiment, cell: GridCell, tally: _Tally) -> None:
    ms = cell.models
    roles = [r for r in experiment.roles if cell.counts.get(r.name, 0) > 0]
    agents = [(r.name, ms.for_role(r.name)) for r in roles for _ in range(cell.counts[r.name])]
    if not agents:
        return
    system = {r.name: _prompt_tokens(experiment, r.name, cell.factors) for r in roles}
    kickoff = _tokens(experiment.starting_message)
    summarizer_prompt = _tokens(
        "\n\n".join(s.content_for(cell.factors) for s in experiment.summarizer_sections)
    )
    summary = _reply_tokens(ms.summarizer_model, SUMMARY_TOKENS)
    history = 0  # tokens of earlier days an agent still sees
    spoken = 0
    for budget in day_budgets(cell.total_messages, cell.days):
        today = 0
        for _turn in range(budget):
            role, ref = agents[spoken % len(agents)]  # round robin approximates any selection
            reply = _reply_tokens(ref, REPLY_TOKENS)
            if cell.speaker_selection is SpeakerSelection.auto:
                tally.add(ms.manager_model, MANAGER_PROMPT_TOKENS + today, MANAGER_REPLY_TOKENS)
            tally.add(ref, system[role] + kickoff + history + today, reply)
            today += reply
            spoken += 1
        tally.add(ms.summarizer_model, summarizer_prompt + today, summary)
        history += today if experiment.dialogue.memory is Memory.full_history else summary


CallEstimator = Callable[[Experiment, GridCell], int]
_CALL_ESTIMATORS: dict[str, CallEstimator] = {}


def register_call_estimator(kind: str, fn: CallEstimator) -> None:
    """Let a game kind say how many model calls one conversation of ``cell`` makes (registered
    by ``simulator.scenarios.<kind>`` at import, like its runner). Without one, the estimate
    assumes a fixed number of calls per agent and round."""
    _CALL_ESTIMATORS[str(kind)] = fn


def _call_estimator(kind: str) -> CallEstimator | None:
    if kind not in _CALL_ESTIMATORS:
        try:
            importlib.import_module(f"simulator.scenarios.{kind}")
        except ImportError:
            return None
    return _CALL_ESTIMATORS.get(kind)


def _game_calls(experiment: Experiment, cell: GridCell) -> int:
    kind = experiment.kind
    fn = _call_estimator(kind.value)
    if fn is not None:
        return max(0, int(fn(experiment, cell)))
    rounds = cell.rounds or int(experiment.game.get("rounds", GAME_DEFAULT_ROUNDS[kind]))
    return rounds * GAME_CALLS_PER_AGENT_ROUND[kind] * sum(cell.counts.values())


def _tally_game(experiment: Experiment, cell: GridCell, tally: _Tally) -> None:
    """The game's calls, shared among the roles by their number of agents."""
    agents = sum(n for n in cell.counts.values() if n > 0)
    if agents == 0:
        return
    total = _game_calls(experiment, cell)
    left = total
    roles = [r for r in experiment.roles if cell.counts.get(r.name, 0) > 0]
    for i, role in enumerate(roles):
        n = cell.counts[role.name]
        calls = left if i == len(roles) - 1 else round(total * n / agents)
        left -= calls
        ref = cell.models.for_role(role.name)
        prompt = _prompt_tokens(experiment, role.name, cell.factors) + GAME_CONTEXT_TOKENS
        reply = _reply_tokens(ref, REPLY_TOKENS)
        tally.add(ref, prompt * calls, reply * calls, calls=calls)


def estimate_cells(
    experiment: Experiment, cells: Iterable[GridCell], prices: Prices | None = None
) -> Estimate:
    tally = _Tally()
    n = 0
    for cell in cells:
        n += 1
        if experiment.kind is ExperimentKind.dialogue:
            _tally_dialogue(experiment, cell, tally)
        else:
            _tally_game(experiment, cell, tally)
    return Estimate(
        conversations=n, llm_calls=tally.calls, tokens=tally.tokens, cost_usd=tally.cost(prices)
    )


def estimate(experiment: Experiment, spec: BatchSpec, prices: Prices | None = None) -> Estimate:
    """Conversations, LLM calls (agent turns, day summaries, speaker-manager calls), tokens, and
    cost in USD when ``prices`` maps models (``provider:model`` or the model name) to
    ``{input_per_1k, output_per_1k}``."""
    return estimate_cells(experiment, expand_grid(experiment, spec), prices)


def describe_cell(cell: GridCell) -> str:
    """A short human label: ``2v1, 3 days, goal=escape, repeat 2``."""
    parts = [cell.counts_label, f"{cell.days} day{'s' if cell.days != 1 else ''}"]
    parts += [f"{k}={v}" for k, v in cell.factors.items()]
    if cell.repeat:
        parts.append(f"repeat {cell.repeat + 1}")
    return ", ".join(parts)


__all__ = [
    "GridSize",
    "cell_key",
    "check_grid_size",
    "count_combinations",
    "count_factor_combinations",
    "day_budgets",
    "day_counts",
    "describe_cell",
    "estimate",
    "estimate_cells",
    "expand_grid",
    "factor_combinations",
    "grid_size",
    "register_call_estimator",
]
