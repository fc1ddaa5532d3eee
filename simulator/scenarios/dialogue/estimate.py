"""What a dialogue conversation costs, in closed form (the dialogue kind's call estimator).

Every call sends the speaker's system prompt, the day's kickoff (with the earlier days' summaries)
and the day's messages so far (every earlier day's too with full-history memory), each labelled
with its speaker's name; each summary reads the day's transcript; with ``auto`` selection a
manager call reads it before each turn. Nothing loops over messages or days: the sums over turns
and days are arithmetic series (``engine.grid.DayShape``, ``agent_prompts``), so a cell of a
trillion messages costs what a cell of ten does. Prompt texts are measured with placeholders
stood in for, replies at the dryrun backend's own length or the assumed one (``engine.grid``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from simulator.domain import Experiment, GridCell, Memory, SpeakerSelection
from simulator.engine.conversation import MANAGER_PROMPT
from simulator.engine.grid import (
    DayShape,
    Reader,
    agent_prompts,
    reply,
    sections_text,
    stand_ins,
)
from simulator.engine.kinds import Tally
from simulator.engine.speakers import MANAGER_INSTRUCTION
from simulator.scenarios.dialogue.context import CONTINUE, SUMMARY_INSTRUCTION


class Texts:
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
        return self._get(key, lambda: sections_text(exp, exp.sections_for(role), levels, name))

    def starting(self, levels: dict[str, str]) -> str:
        exp = self.experiment
        key = ("starting", *_flat(levels))
        return self._get(key, lambda: stand_ins(exp.starting_message, exp, levels, ""))

    def summarizer(self, levels: dict[str, str]) -> str:
        exp = self.experiment
        sections = sorted(exp.summarizer_sections, key=lambda sec: sec.position)
        key = ("summarizer", *_flat(levels))
        return self._get(key, lambda: sections_text(exp, sections, levels, ""))


def _flat(levels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(x for kv in sorted(levels.items()) for x in kv)


def estimate_dialogue(experiment: Experiment, cell: GridCell, tally: Tally) -> None:
    """A dialogue cell's calls and tokens in closed form (see the module docstring): the work
    grows with the number of roles, never with the messages, the days or the agents."""

    texts = tally.memo.get(Texts)
    if texts is None or texts.experiment is not experiment:
        texts = tally.memo[Texts] = Texts(experiment)
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
    measured = tally.measured
    replies = {
        r: reply(ms.for_role(r), "utterance", agent=first[r], role=r, measured=measured)
        for r in counts
    }
    mean_reply = sum(counts[r] * replies[r] for r in counts) / n
    summarizer = ms.summarizer_model
    summary = reply(summarizer, "summary", measured=measured)

    def per_agent(reader: Reader, text: Callable[[str], str]) -> float:
        """The mean tokens of ``text(agent name)`` over the agents."""
        return sum(counts[r] * reader.text(text(first[r])) for r in counts) / n

    def labels(reader: Reader) -> float:
        return per_agent(reader, lambda name: f"{name}:")

    # ---- agents: for each day d of budget B, turn t sends system + kickoff_d + history_d and
    # the t - 1 messages before it (own ones unlabelled; with one agent each follows a
    # "Continue."), so the day sends B (system + kickoff + history) + m B (B - 1) / 2.
    for role, n_role in counts.items():
        ref = ms.for_role(role)
        reader = Reader.of(ref, measured)
        system = reader.text(texts.system(role, levels, first[role]))
        kickoff = reader.text(texts.starting(levels))
        per_day_summary = reader.text("Day 1 summary:") + summary
        cont = reader.text(CONTINUE) if n == 1 else 0.0
        m = mean_reply + (1 - 1 / n) * labels(reader) + cont
        prompt = agent_prompts(
            DayShape(system, kickoff, per_day_summary, m, cont, full_history), q, rem, days
        )
        share = n_role / n
        tally.add(ref, prompt * share, total * share * replies[role], calls=total * share)

    # ---- the summarizer: once a day, the day's labelled transcript
    reader = Reader.of(summarizer, measured)
    fixed = reader.text(texts.summarizer(levels))
    fixed += reader.text(f"Transcript of day 1:\n\n{SUMMARY_INSTRUCTION.format(day=1)}")
    prompt = days * fixed + total * (mean_reply + labels(reader))
    tally.add(summarizer, prompt, days * summary, calls=days)

    # ---- the manager (auto): before each turn with two or more eligible agents (every turn
    # from three agents on; with two, only a day's first), reading the day's transcript so far
    if cell.speaker_selection is not SpeakerSelection.auto or n < 2:
        return
    manager = ms.manager_model
    reader = Reader.of(manager, measured)
    eligible = n - 1 if n > 2 else n
    fixed = reader.text(MANAGER_PROMPT.format(participants=""))
    fixed += n * per_agent(reader, lambda name: f"{name} ({name[:-2]}),")
    fixed += reader.text(MANAGER_INSTRUCTION.format(names=""))
    fixed += eligible * per_agent(reader, lambda name: f"{name},")
    name_words = sum(counts[r] * len(first[r].split()) for r in counts) / n
    answer = reply(manager, "manager", names=round(name_words), measured=measured)
    if n == 2:
        tally.add(manager, days * fixed, days * answer, calls=days)
        return
    m = mean_reply + labels(reader)
    series = rem * (q + 1) * q / 2 + (days - rem) * q * (q - 1) / 2  # sum of (t - 1) over turns
    tally.add(manager, total * fixed + m * series, total * answer, calls=total)


__all__ = ["Texts", "estimate_dialogue"]
