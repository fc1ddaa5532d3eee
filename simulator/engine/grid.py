"""A batch request's grid: the cells it expands to, and what running them will cost.

``expand_grid`` is pure and deterministic: the same experiment and spec always give the same
cells in the same order. Each cell's seed is derived from the batch's base seed and the cell's
*content* (counts, days, models, factor levels, repeat ...), never from its position, so adding a
factor level or a model to a study does not change the seeds of the cells that were already there.

``estimate`` reports, before anything runs, how many conversations and LLM calls a batch makes and
how many tokens they use (and their cost when a price table is given). The TUI's batch setup and
``simulator run`` (``--dry-run`` too) both show ``estimate_cells``.

Each cell is worked out by its experiment kind's estimator (``EngineKind.estimate``, from the
kind registry the engine is handed: ``engine.kinds``), in closed form: nothing loops over messages,
rounds or days, so a cell of a trillion messages costs what a cell of ten does. The tools the
estimators share are here: how a model counts tokens (``Reader``: about four characters per
token, or the dryrun backend's own 1.3 tokens per word), how long an answer is (``reply``: the
dryrun backend's own length, or 150 tokens, ``max_tokens`` when lower; summaries 250), prompt
texts with placeholders stood in for (``sections_text``: rendering would import the grammar
library, which is slow to load), sums of quadratic series (``sum_quadratic``) and the closed form
of a day of turns (``DayShape``, ``agent_prompts``), and a game's calls shared among its roles
(``tally_game_calls``).

Estimates learn: given the rates that earlier batches of the experiment measured
(``engine.ledger.MeasuredRates``, carried by the tally as ``measured``), a model other than dryrun
is counted at its measured completion tokens per call (by purpose) and prompt tokens per
character instead of the assumed ones. Costs come from ``llm.prices.PriceTable``: the user's
prices over dated defaults for OpenAI's own models.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.domain import (
    BatchSpec,
    Estimate,
    Experiment,
    GridCell,
    ModelRef,
    ModelSet,
    Provider,
    Section,
    SpeakerSelection,
)
from simulator.domain.cells import repeat_number
from simulator.domain.errors import SpecError
from simulator.domain.models import MAX_CELLS, speaker_methods
from simulator.engine.budget import day_budgets
from simulator.engine.kinds import KindCatalog, Tally, resolve, uses_days
from simulator.engine.rng import derive_seed

if TYPE_CHECKING:
    from simulator.engine.ledger import MeasuredRates

CHARS_PER_TOKEN = 4
REPLY_TOKENS = 150  # an utterance, when max_tokens does not bound it lower
SUMMARY_TOKENS = 250
MANAGER_PROMPT_TOKENS = 120
MANAGER_REPLY_TOKENS = 8
GAME_CONTEXT_TOKENS = 400  # game state and recent posts shown with every game call

# model -> {input_per_1k, output_per_1k, [cached_input_per_1k], [as_of]} (llm/prices.py)
Prices = Mapping[str, Mapping[str, Any]]


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


def speaker_selections(spec: BatchSpec) -> list[SpeakerSelection]:
    """The spec's speaker selection methods, one grid level each (a spec copied with a single
    method, without validation, counts as a list of one)."""
    return list(speaker_methods(spec.speaker_selection))


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
    """How many cells ``expand_grid`` would make: model sets x factor combinations x speaker
    selections x agent counts x day counts x repeats, multiplied (cheap for any spec, however
    large)."""
    maxima = _maxima(experiment, spec)
    counts = math.prod(maxima.values()) if spec.every_combination else 1
    methods = len(speaker_selections(spec))
    parts = (
        (len(spec.model_sets), "model set"),
        (count_factor_combinations(experiment, spec), "factor combination"),
        # named only when it varies: a single method is not a dimension a reader looks for
        *([(methods, "speaker selection")] if methods > 1 else []),
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
            "batch; lower the maxima of agents, the day counts, the factor levels, the models, "
            "the speaker selections or the repeats"
        )
    return size.cells


def seed_path(cell: GridCell) -> str:
    """A canonical text naming the cell's content (not its position), its repeat included: the
    seed's derivation path. (The cell a table groups by is ``simulator.domain.cells.cell_key``.)"""
    content = cell.model_dump(mode="json", exclude={"seed"})
    return json.dumps(content, sort_keys=True, separators=(",", ":"))


def expand_grid(
    experiment: Experiment, spec: BatchSpec, kinds: KindCatalog | None = None
) -> list[GridCell]:
    """The batch's cells, in a stable order: model set, factor levels, speaker selection,
    counts, days, repeat.

    Refuses (SpecError) a grid of more than ``MAX_CELLS`` cells before expanding anything, and
    an experiment of a kind the registry (``kinds``, else the installed one) does not know."""
    kind = resolve(kinds).get(experiment.kind)
    if spec.days > spec.total_messages and uses_days(kind):
        raise SpecError(
            f"batch.days: at most total_messages ({spec.total_messages}): every day needs at "
            "least one message"
        )
    check_grid_size(experiment, spec)
    cells: list[GridCell] = []
    for models, levels, speaker_selection, counts, days, repeat in itertools.product(
        spec.model_sets,
        factor_combinations(experiment, spec),
        speaker_selections(spec),
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
            speaker_selection=speaker_selection,
            repeat=repeat,
            rounds=spec.rounds,
        )
        cell.seed = derive_seed(spec.seed, "cell", seed_path(cell))
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


_TAG = re.compile(r"<([^<>\n]{1,80})>")
_STAND_IN = "xxxxx"  # a rendered tag is one short word (guards, three, they, makes, ...)


def stand_ins(text: str, experiment: Experiment, levels: Mapping[str, str], name: str) -> str:
    """``text`` with each placeholder replaced by something as long as its rendering: a factor
    tag by the level, ``<NAME>`` by the agent's name, a role's noun by the role's name, any
    other tag by one short word. (Rendering itself would import inflect, seconds of work the
    TUI cannot spend while drawing the estimate.)"""
    roles = [r.name.casefold() for r in experiment.roles]
    by_factor = {k.casefold(): v for k, v in levels.items()}

    def one(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        folded = body.casefold()
        head, colon, rest = folded.partition(":")
        if colon and head == "factor":
            return by_factor.get(rest.strip(), _STAND_IN)
        if folded == "name":
            return name or _STAND_IN
        if folded.endswith(("_noun", "_poss")):
            role = folded.rsplit("_", 1)[0]
            if role in roles:
                return role
        return _STAND_IN

    return _TAG.sub(one, text)


def sections_text(
    experiment: Experiment, sections: Iterable[Section], levels: Mapping[str, str], name: str
) -> str:
    """Sections as ``render_sections`` lays them out (a ``## Title`` heading on each but the
    first, empty ones left out), placeholders stood in."""
    parts: list[str] = []
    for sec in sections:
        body = stand_ins(sec.content_for(dict(levels)), experiment, levels, name).strip()
        if not body:
            continue
        parts.append(f"## {sec.title}\n\n{body}" if parts and sec.title.strip() else body)
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Reader:
    """How a model counts the tokens of a text: the dryrun backend at 1.3 tokens per word (its
    own rule, so its estimates match what it reports), any other at the tokens per character
    earlier batches measured for it, else at about 4 characters per token."""

    dryrun: bool
    per_char: float | None = None

    @classmethod
    def of(cls, ref: ModelRef, measured: MeasuredRates | None = None) -> Reader:
        if ref.provider is Provider.dryrun:
            return cls(True)
        return cls(False, measured.per_char(_key(ref)) if measured else None)

    def text(self, text: str) -> float:
        if self.per_char is not None:
            return len(text) * self.per_char
        return _count(text, self.dryrun)


def _key(ref: ModelRef) -> str:
    return f"{ref.provider.value}:{ref.model}"


@functools.lru_cache(maxsize=4096)
def _count(text: str, dryrun: bool) -> float:
    from simulator.llm.dryrun import TOKENS_PER_WORD

    if dryrun:
        return len(text.split()) * TOKENS_PER_WORD
    return len(text) / CHARS_PER_TOKEN


def reply(
    ref: ModelRef,
    purpose: str,
    *,
    agent: str = "",
    role: str = "",
    names: int = 2,
    measured: MeasuredRates | None = None,
) -> float:
    """Tokens of one answer: the dryrun backend's own length, else the length earlier batches
    measured for the model, else the assumed length."""
    if ref.provider is Provider.dryrun and not ref.options.get("policy"):
        from simulator.llm.dryrun import policy_for

        if policy_for(ref) is None:
            return _dryrun_reply(purpose, len(agent.split()), len(role.split()), names)
    learnt = measured.reply(_key(ref), purpose) if measured else None
    if learnt is not None and ref.provider is not Provider.dryrun:
        return learnt
    if purpose == "manager":
        return float(_reply_tokens(ref, MANAGER_REPLY_TOKENS))
    return float(_reply_tokens(ref, SUMMARY_TOKENS if purpose == "summary" else REPLY_TOKENS))


@functools.lru_cache(maxsize=1024)
def _dryrun_reply(purpose: str, agent_words: int, role_words: int, names: int) -> float:
    from simulator.llm.dryrun import TOKENS_PER_WORD, reply_words

    agent, role = " ".join("x" * agent_words), " ".join("x" * role_words)
    return reply_words(purpose, agent=agent, role=role, names=names) * TOKENS_PER_WORD


def sum_quadratic(f: Callable[[int], float], first: int, last: int) -> float:
    """``f(first) + ... + f(last)`` for ``f`` a polynomial of degree at most 2, from three of
    its values (Newton's forward differences): the same work for any number of terms."""
    n = max(0, last - first + 1)  # an empty range sums to 0 by the same formula
    f0, f1, f2 = f(first), f(first + 1), f(first + 2)
    d1, d2 = f1 - f0, f2 - 2 * f1 + f0
    return n * f0 + d1 * n * (n - 1) / 2 + d2 * n * (n - 1) * (n - 2) / 6


class _Tally:
    """Calls and tokens per model, for totals and cost (expectations: rounded at the end)."""

    def __init__(self, measured: MeasuredRates | None = None) -> None:
        self.memo: dict[Any, Any] = {}
        self.measured = measured
        self.calls = 0.0
        self.per_model: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.refs: dict[str, ModelRef] = {}

    def add(self, ref: ModelRef, prompt: float, completion: float, calls: float = 1) -> None:
        key = f"{ref.provider.value}:{ref.model}"
        self.refs[key] = ref
        self.calls += calls
        self.per_model[key][0] += prompt
        self.per_model[key][1] += completion

    @property
    def tokens(self) -> int:
        return round(sum(p + c for p, c in self.per_model.values()))

    def cost(self, prices: Prices | None) -> float | None:
        """The total at the price table (llm/prices.py: the user's prices over dated defaults
        for OpenAI's own models); None when a model has no price, or when no table is given
        and no model has a default price."""
        from simulator.llm.prices import PriceTable

        table = PriceTable(prices)
        priced = {key: table.price_for(ref) for key, ref in self.refs.items()}
        if not prices and not any(p is not None and p.default for p in priced.values()):
            return None
        total = 0.0
        for key, (prompt, completion) in self.per_model.items():
            price = priced[key]
            if price is None:
                return None  # a model without a price: no honest total
            total += prompt / 1000 * price.input_per_1k + completion / 1000 * price.output_per_1k
        return round(total, 4)


@dataclass(frozen=True)
class DayShape:
    """What one reader's requests are made of, in its tokens: its system prompt, day 1's
    kickoff, what each earlier day adds to a kickoff (a heading and its summary), a message of
    the day as it reads it, the "Continue." between own turns (one agent only), and whether
    earlier days stay in the context."""

    system: float
    kickoff: float
    per_day_summary: float
    message: float
    cont: float
    full_history: bool

    def day(self, d: int, budget: int, before: float) -> float:
        """Prompt tokens of day ``d``'s ``budget`` turns with ``before`` messages on earlier
        days: each turn sends system + kickoff + history and the turns before it."""
        kick = self.kickoff + (d - 1) * self.per_day_summary
        history = 0.0
        if self.full_history:  # earlier kickoffs and messages (a day's last "Continue." not)
            kicks = (d - 1) * self.kickoff + self.per_day_summary * (d - 1) * (d - 2) / 2
            history = kicks + before * self.message - (d - 1) * self.cont
        return budget * (self.system + kick + history) + self.message * budget * (budget - 1) / 2


def agent_prompts(shape: DayShape, q: int, rem: int, days: int) -> float:
    """Prompt tokens of every agent turn over the days: ``rem`` days of ``q + 1`` turns, then
    ``q`` turns a day (``engine.budget.day_budgets``); each group's sum is quadratic in the day."""
    first = sum_quadratic(lambda d: shape.day(d, q + 1, (d - 1) * (q + 1)), 1, rem)
    return first + sum_quadratic(lambda d: shape.day(d, q, (d - 1) * q + rem), rem + 1, days)


def tally_game_calls(experiment: Experiment, cell: GridCell, tally: Tally, calls: int) -> None:
    """A game's ``calls`` per conversation of ``cell``, shared among the roles by their number
    of agents; each call sends the role's prompt and the game's state (``GAME_CONTEXT_TOKENS``)
    and gets an answer of ``REPLY_TOKENS`` (``max_tokens`` when lower)."""
    agents = sum(n for n in cell.counts.values() if n > 0)
    if agents == 0:
        return
    total = max(0, int(calls))
    left = total
    roles = [r for r in experiment.roles if cell.counts.get(r.name, 0) > 0]
    for i, role in enumerate(roles):
        n = cell.counts[role.name]
        calls = left if i == len(roles) - 1 else round(total * n / agents)
        left -= calls
        ref = cell.models.for_role(role.name)
        prompt = _prompt_tokens(experiment, role.name, cell.factors) + GAME_CONTEXT_TOKENS
        measured = tally.measured
        learnt = measured.reply(_key(ref), "action") if measured else None
        answer = learnt if learnt is not None else _reply_tokens(ref, REPLY_TOKENS)
        tally.add(ref, prompt * calls, answer * calls, calls=calls)


class _Recorder(_Tally):
    """A tally that keeps what was added, to add it again for each repeat of a cell."""

    def __init__(self, memo: dict[Any, Any], measured: MeasuredRates | None = None) -> None:
        super().__init__(measured)
        self.memo = memo
        self.added: list[tuple[ModelRef, float, float, float]] = []

    def add(self, ref: ModelRef, prompt: float, completion: float, calls: float = 1) -> None:
        self.added.append((ref, prompt, completion, calls))


def estimate_cells(
    experiment: Experiment,
    cells: Iterable[GridCell],
    prices: Prices | None = None,
    kinds: KindCatalog | None = None,
    measured: MeasuredRates | None = None,
) -> Estimate:
    """The estimate of these cells: what ``estimate``, ``simulator run`` and the TUI's batch
    setup show. Each cell is worked out by the experiment kind's estimator (from ``kinds``, else
    the installed registry); cells that differ only in repeat and seed are worked out once.
    ``measured``: the rates earlier batches of the experiment measured
    (``engine.ledger.learned_rates``)."""
    kind = resolve(kinds).get(experiment.kind)
    tally = _Tally()
    memo: dict[Any, Any] = {}
    done: dict[tuple[object, ...], list[tuple[ModelRef, float, float, float]]] = {}
    model_sets: dict[int, ModelSet] = {}  # kept alive: their ids stay theirs
    n = 0
    for cell in cells:
        n += 1
        model_sets.setdefault(id(cell.models), cell.models)
        key = (
            tuple(cell.counts.items()),
            cell.days,
            cell.total_messages,
            tuple(cell.factors.items()),
            cell.speaker_selection,
            cell.rounds,
            id(cell.models),
        )
        if key not in done:
            recorder = _Recorder(memo, measured)
            kind.estimate(experiment, cell, recorder)
            done[key] = recorder.added
        for added in done[key]:
            tally.add(*added)
    return Estimate(
        conversations=n,
        llm_calls=round(tally.calls),
        tokens=tally.tokens,
        cost_usd=tally.cost(prices),
        measured_calls=measured.calls if measured else 0,
    )


def estimate(
    experiment: Experiment,
    spec: BatchSpec,
    prices: Prices | None = None,
    kinds: KindCatalog | None = None,
) -> Estimate:
    """Conversations, LLM calls (agent turns, day summaries, speaker-manager calls), tokens, and
    cost in USD when ``prices`` maps models (``provider:model`` or the model name) to
    ``{input_per_1k, output_per_1k}``."""
    return estimate_cells(experiment, expand_grid(experiment, spec, kinds), prices, kinds)


class _Calls:
    """A tally that counts calls only (``planned_calls``)."""

    def __init__(self, memo: dict[Any, Any]) -> None:
        self.memo = memo
        self.measured: MeasuredRates | None = None
        self.calls = 0.0

    def add(self, ref: ModelRef, prompt: float, completion: float, calls: float = 1) -> None:
        self.calls += calls


def planned_calls(
    experiment: Experiment,
    cell: GridCell,
    kinds: KindCatalog | None = None,
    memo: dict[Any, Any] | None = None,
) -> int:
    """The model calls one conversation of ``cell`` makes, the yardstick of its progress (what
    ``Conversation.calls_done`` counts up to): the calls the experiment kind's estimator counts
    for the cell, exactly as the estimate counts them (a dialogue's agent turns, one summary a
    day and, with ``auto`` selection, the manager's calls; a game's decisions). A conversation
    that ends early (a stop phrase) makes fewer. ``memo``: shared by the calls for one
    experiment's cells, so a cell that differs from another only in repeat and seed is worked
    out once."""
    memo = memo if memo is not None else {}
    key = (
        "planned_calls",
        tuple(cell.counts.items()),
        cell.days,
        cell.total_messages,
        tuple(cell.factors.items()),
        cell.speaker_selection,
        cell.rounds,
        cell.models.model_dump_json(),
    )
    if key not in memo:
        tally = _Calls(memo)
        resolve(kinds).get(experiment.kind).estimate(experiment, cell, tally)
        memo[key] = max(0, round(tally.calls))
    return int(memo[key])


def describe_cell(cell: GridCell) -> str:
    """A short human label: ``2v1, 3 days, goal=escape, random, repeat 2`` (the speaker
    selection named when it is not round robin)."""
    parts = [cell.counts_label, f"{cell.days} day{'s' if cell.days != 1 else ''}"]
    parts += [f"{k}={v}" for k, v in cell.factors.items()]
    if cell.speaker_selection is not SpeakerSelection.round_robin:
        parts.append(cell.speaker_selection.value)
    if cell.repeat:
        parts.append(f"repeat {repeat_number(cell)}")
    return ", ".join(parts)


__all__ = [
    "GAME_CONTEXT_TOKENS",
    "REPLY_TOKENS",
    "DayShape",
    "GridSize",
    "Reader",
    "agent_prompts",
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
    "planned_calls",
    "reply",
    "sections_text",
    "seed_path",
    "speaker_selections",
    "stand_ins",
    "sum_quadratic",
    "tally_game_calls",
]
