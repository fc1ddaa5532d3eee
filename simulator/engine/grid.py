"""A batch request's grid: the cells it expands to, and what running them will cost.

``expand_grid`` is pure and deterministic: the same experiment and spec always give the same
cells in the same order. Each cell's seed is derived from the batch's base seed and the cell's
*content* (counts, days, models, factor levels, repeat ...), never from its position, so adding a
factor level or a model to a study does not change the seeds of the cells that were already there.

``estimate`` reports, before anything runs, how many conversations and LLM calls a batch makes and
how many tokens they use (and their cost when a price table is given). The TUI's batch setup and
``simulator run`` (``--dry-run`` too) both show ``estimate_cells``.

A dialogue's tokens are worked out per cell in closed form, from how its prompts grow: every call
sends the speaker's system prompt, the day's kickoff (with the earlier days' summaries) and the
day's messages so far (every earlier day's too with full-history memory), each labelled with its
speaker's name; each summary reads the day's transcript; with ``auto`` selection a manager call
reads it before each turn. Nothing loops over messages or days: the sums over turns and days are
arithmetic series, so a cell of a trillion messages costs what a cell of ten does. Prompt texts
are measured with placeholders stood in for (rendering would import the grammar library, which is
slow to load), at about four characters per token, or at the dryrun backend's own 1.3 tokens per
word; replies are the dryrun backend's own length, or 150 tokens (``max_tokens`` when lower;
summaries 250). Game kinds register their number of calls per conversation here
(``register_call_estimator``).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import math
import re
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
    ModelSet,
    Provider,
    Section,
    SpeakerSelection,
)
from simulator.domain.cells import repeat_number
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


def seed_path(cell: GridCell) -> str:
    """A canonical text naming the cell's content (not its position), its repeat included: the
    seed's derivation path. (The cell a table groups by is ``simulator.domain.cells.cell_key``.)"""
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


def _stand_ins(text: str, experiment: Experiment, levels: Mapping[str, str], name: str) -> str:
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


def _sections_text(
    experiment: Experiment, sections: Iterable[Section], levels: Mapping[str, str], name: str
) -> str:
    """Sections as ``render_sections`` lays them out (a ``## Title`` heading on each but the
    first, empty ones left out), placeholders stood in."""
    parts: list[str] = []
    for sec in sections:
        body = _stand_ins(sec.content_for(dict(levels)), experiment, levels, name).strip()
        if not body:
            continue
        parts.append(f"## {sec.title}\n\n{body}" if parts and sec.title.strip() else body)
    return "\n\n".join(parts)


@dataclass(frozen=True)
class _Reader:
    """How a model counts the tokens of a text: the dryrun backend at 1.3 tokens per word (its
    own rule, so its estimates match what it reports), any other at about 4 characters per
    token."""

    dryrun: bool

    @classmethod
    def of(cls, ref: ModelRef) -> _Reader:
        return cls(ref.provider is Provider.dryrun)

    def text(self, text: str) -> float:
        return _count(text, self.dryrun)


@functools.lru_cache(maxsize=4096)
def _count(text: str, dryrun: bool) -> float:
    from simulator.llm.dryrun import TOKENS_PER_WORD

    if dryrun:
        return len(text.split()) * TOKENS_PER_WORD
    return len(text) / CHARS_PER_TOKEN


def _reply(
    ref: ModelRef, purpose: str, *, agent: str = "", role: str = "", names: int = 2
) -> float:
    """Tokens of one answer: the dryrun backend's own length, else the assumed length."""
    if ref.provider is Provider.dryrun and not ref.options.get("policy"):
        from simulator.llm.dryrun import policy_for

        if policy_for(ref) is None:
            return _dryrun_reply(purpose, len(agent.split()), len(role.split()), names)
    if purpose == "manager":
        return float(_reply_tokens(ref, MANAGER_REPLY_TOKENS))
    return float(_reply_tokens(ref, SUMMARY_TOKENS if purpose == "summary" else REPLY_TOKENS))


@functools.lru_cache(maxsize=1024)
def _dryrun_reply(purpose: str, agent_words: int, role_words: int, names: int) -> float:
    from simulator.llm.dryrun import TOKENS_PER_WORD, reply_words

    agent, role = " ".join("x" * agent_words), " ".join("x" * role_words)
    return reply_words(purpose, agent=agent, role=role, names=names) * TOKENS_PER_WORD


def _sum_quadratic(f: Callable[[int], float], first: int, last: int) -> float:
    """``f(first) + ... + f(last)`` for ``f`` a polynomial of degree at most 2, from three of
    its values (Newton's forward differences): the same work for any number of terms."""
    n = max(0, last - first + 1)  # an empty range sums to 0 by the same formula
    f0, f1, f2 = f(first), f(first + 1), f(first + 2)
    d1, d2 = f1 - f0, f2 - 2 * f1 + f0
    return n * f0 + d1 * n * (n - 1) / 2 + d2 * n * (n - 1) * (n - 2) / 6


class _Tally:
    """Calls and tokens per model, for totals and cost (expectations: rounded at the end)."""

    def __init__(self) -> None:
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


@dataclass(frozen=True)
class _DayShape:
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


def _agent_prompts(shape: _DayShape, q: int, rem: int, days: int) -> float:
    """Prompt tokens of every agent turn over the days: ``rem`` days of ``q + 1`` turns, then
    ``q`` turns a day (``engine.budget.day_budgets``); each group's sum is quadratic in the day."""
    first = _sum_quadratic(lambda d: shape.day(d, q + 1, (d - 1) * (q + 1)), 1, rem)
    return first + _sum_quadratic(lambda d: shape.day(d, q, (d - 1) * q + rem), rem + 1, days)


class _Texts:
    """The prompt texts of one experiment, placeholders stood in, by role and factor levels
    (made once per estimate, however many cells share them)."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        self._cache: dict[tuple[str, ...], str] = {}

    def _get(self, key: tuple[str, ...], make: Callable[[], str]) -> str:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def system(self, role: str, levels: dict[str, str], name: str) -> str:
        exp = self.experiment
        key = ("system", role, name, *_flat(levels))
        return self._get(key, lambda: _sections_text(exp, exp.sections_for(role), levels, name))

    def starting(self, levels: dict[str, str]) -> str:
        exp = self.experiment
        key = ("starting", *_flat(levels))
        return self._get(key, lambda: _stand_ins(exp.starting_message, exp, levels, ""))

    def summarizer(self, levels: dict[str, str]) -> str:
        exp = self.experiment
        sections = sorted(exp.summarizer_sections, key=lambda sec: sec.position)
        key = ("summarizer", *_flat(levels))
        return self._get(key, lambda: _sections_text(exp, sections, levels, ""))


def _flat(levels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(x for kv in sorted(levels.items()) for x in kv)


def _tally_dialogue(
    experiment: Experiment, cell: GridCell, tally: _Tally, texts: _Texts | None = None
) -> None:
    """A dialogue cell's calls and tokens in closed form (see the module docstring): the work
    grows with the number of roles, never with the messages, the days or the agents."""
    from simulator.engine.conversation import MANAGER_PROMPT
    from simulator.engine.speakers import MANAGER_INSTRUCTION
    from simulator.scenarios.dialogue.context import CONTINUE, SUMMARY_INSTRUCTION

    texts = texts or _Texts(experiment)
    ms = cell.models
    counts = {r.name: cell.counts.get(r.name, 0) for r in experiment.roles}
    counts = {r: c for r, c in counts.items() if c > 0}
    n = sum(counts.values())
    if n == 0:
        return
    total, days = cell.total_messages, cell.days
    q, rem = divmod(total, days)  # day budgets: q + 1 on the first ``rem`` days, q after
    full_history = experiment.dialogue.memory is Memory.full_history
    levels = dict(cell.factors)
    # agents are named "<Role> <i>" (roles.agent_names): the first of a role stands for all
    first = {r: f"{r[:1].upper()}{r[1:]} 1" for r in counts}
    replies = {r: _reply(ms.for_role(r), "utterance", agent=first[r], role=r) for r in counts}
    mean_reply = sum(counts[r] * replies[r] for r in counts) / n
    summarizer = ms.summarizer_model
    summary = _reply(summarizer, "summary")

    def per_agent(reader: _Reader, text: Callable[[str], str]) -> float:
        """The mean tokens of ``text(agent name)`` over the agents."""
        return sum(counts[r] * reader.text(text(first[r])) for r in counts) / n

    def labels(reader: _Reader) -> float:
        return per_agent(reader, lambda name: f"{name}:")

    # ---- agents: for each day d of budget B, turn t sends system + kickoff_d + history_d and
    # the t - 1 messages before it (own ones unlabelled; with one agent each follows a
    # "Continue."), so the day sends B (system + kickoff + history) + m B (B - 1) / 2.
    for role, n_role in counts.items():
        ref = ms.for_role(role)
        reader = _Reader.of(ref)
        system = reader.text(texts.system(role, levels, first[role]))
        kickoff = reader.text(texts.starting(levels))
        per_day_summary = reader.text("Day 1 summary:") + summary
        cont = reader.text(CONTINUE) if n == 1 else 0.0
        m = mean_reply + (1 - 1 / n) * labels(reader) + cont
        prompt = _agent_prompts(
            _DayShape(system, kickoff, per_day_summary, m, cont, full_history), q, rem, days
        )
        share = n_role / n
        tally.add(ref, prompt * share, total * share * replies[role], calls=total * share)

    # ---- the summarizer: once a day, the day's labelled transcript
    reader = _Reader.of(summarizer)
    fixed = reader.text(texts.summarizer(levels))
    fixed += reader.text(f"Transcript of day 1:\n\n{SUMMARY_INSTRUCTION.format(day=1)}")
    prompt = days * fixed + total * (mean_reply + labels(reader))
    tally.add(summarizer, prompt, days * summary, calls=days)

    # ---- the manager (auto): before each turn with two or more eligible agents (every turn
    # from three agents on; with two, only a day's first), reading the day's transcript so far
    if cell.speaker_selection is not SpeakerSelection.auto or n < 2:
        return
    manager = ms.manager_model
    reader = _Reader.of(manager)
    eligible = n - 1 if n > 2 else n
    fixed = reader.text(MANAGER_PROMPT.format(participants=""))
    fixed += n * per_agent(reader, lambda name: f"{name} ({name[:-2]}),")
    fixed += reader.text(MANAGER_INSTRUCTION.format(names=""))
    fixed += eligible * per_agent(reader, lambda name: f"{name},")
    name_words = sum(counts[r] * len(first[r].split()) for r in counts) / n
    answer = _reply(manager, "manager", names=round(name_words))
    if n == 2:
        tally.add(manager, days * fixed, days * answer, calls=days)
        return
    m = mean_reply + labels(reader)
    series = rem * (q + 1) * q / 2 + (days - rem) * q * (q - 1) / 2  # sum of (t - 1) over turns
    tally.add(manager, total * fixed + m * series, total * answer, calls=total)


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


class _Recorder(_Tally):
    """A tally that keeps what was added, to add it again for each repeat of a cell."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[ModelRef, float, float, float]] = []

    def add(self, ref: ModelRef, prompt: float, completion: float, calls: float = 1) -> None:
        self.added.append((ref, prompt, completion, calls))


def estimate_cells(
    experiment: Experiment, cells: Iterable[GridCell], prices: Prices | None = None
) -> Estimate:
    """The estimate of these cells: what ``estimate``, ``simulator run`` and the TUI's batch
    setup show. Cells that differ only in repeat and seed are worked out once."""
    tally = _Tally()
    texts = _Texts(experiment)
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
            recorder = _Recorder()
            if experiment.kind is ExperimentKind.dialogue:
                _tally_dialogue(experiment, cell, recorder, texts)
            else:
                _tally_game(experiment, cell, recorder)
            done[key] = recorder.added
        for added in done[key]:
            tally.add(*added)
    return Estimate(
        conversations=n,
        llm_calls=round(tally.calls),
        tokens=tally.tokens,
        cost_usd=tally.cost(prices),
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
        parts.append(f"repeat {repeat_number(cell)}")
    return ", ".join(parts)


__all__ = [
    "GridSize",
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
    "seed_path",
]
