"""The domain model: plain pydantic data, validation, no I/O.

One concept, one name: these names are the ones used in MongoDB documents, in the UI and in the
docs.
Identifiers are strings (hex uuids) so that documents look the same on the embedded server and on a
real MongoDB, and so that ids can be generated before a write (which makes writes idempotent).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.domain.errors import SimulatorError


def new_id() -> str:
    """A fresh identifier (32 hex characters)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Timezone-aware now, truncated to milliseconds (what BSON dates keep)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


class Model(BaseModel):
    """Base for every domain model: unknown fields are errors, so typos in specs are caught."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------- enumerations


class ExperimentKind(StrEnum):
    dialogue = "dialogue"
    commons = "commons"
    reputation = "reputation"


class SectionKind(StrEnum):
    shared = "shared"
    private = "private"
    summarizer = "summarizer"


class Provider(StrEnum):
    ollama = "ollama"
    openai = "openai"
    dryrun = "dryrun"


class SpeakerSelection(StrEnum):
    round_robin = "round_robin"
    random = "random"
    auto = "auto"
    manual = "manual"


class Status(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (Status.done, Status.failed)


class MessageKind(StrEnum):
    kickoff = "kickoff"
    utterance = "utterance"
    summary = "summary"
    action = "action"
    system = "system"


class Memory(StrEnum):
    """What agents remember across days."""

    summaries = "summaries"  # the published setup: only the previous days' summaries
    full_history = "full_history"


# --------------------------------------------------------------------------- experiments

_ROLE_NAME_FORBIDDEN = re.compile(r"[<>:{}\n\t]")


class Section(Model):
    """A titled block of prompt text.

    ``position`` orders an agent's sections: shared and private sections interleave by position.
    A section may be driven by a study factor: then ``variants`` maps each level of ``factor`` to
    the section's content for that level (an empty variant omits the section for that level).
    """

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    title: str = ""
    content: str = ""
    kind: SectionKind = SectionKind.shared
    position: int = 0
    factor: str | None = None
    variants: dict[str, str] = Field(default_factory=dict)

    def content_for(self, levels: dict[str, str]) -> str:
        """The section's text under the given factor levels."""
        if self.factor is None:
            return self.content
        return self.variants.get(levels.get(self.factor, ""), self.content)


class Gender(StrEnum):
    neutral = "neutral"
    female = "female"
    male = "male"


class Role(Model):
    """A role (guard, prisoner, ...) with its private sections."""

    name: str
    gender: Gender = Gender.neutral
    sections: list[Section] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        v = " ".join(v.split())
        if not v:
            raise ValueError("a role needs a name")
        if _ROLE_NAME_FORBIDDEN.search(v):
            raise ValueError(f"role name {v!r} may not contain < > : {{ }} or line breaks")
        if len(v) > 60:
            raise ValueError(f"role name {v!r} is longer than 60 characters")
        return v


class SamplingParams(Model):
    """Sampling parameters, sent exactly as shown. ``None`` means: not sent (provider default)."""

    temperature: float | None = Field(default=0.7, ge=0, le=2)
    top_p: float | None = Field(default=0.9, ge=0, le=1)
    top_k: int | None = Field(default=40, ge=1)
    num_ctx: int | None = Field(default=8192, ge=256)
    max_tokens: int | None = Field(default=512, ge=1)
    seed: int | None = None


class ModelRef(Model):
    """Which model answers, where, and with which parameters.

    The provider is explicit (never guessed from the model name). ``base_url`` points an ``openai``
    reference at any OpenAI-compatible server, or an ``ollama`` reference at another host.
    ``options`` carries provider-specific extras (for dryrun: ``latency_ms``, ``policy``).
    """

    provider: Provider = Provider.dryrun
    model: str = "dryrun"
    base_url: str | None = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_not_empty(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("a model name is required")
        return v

    @property
    def endpoint(self) -> str:
        """Identifies the server that answers: used for per-endpoint concurrency limits."""
        return f"{self.provider.value}:{self.base_url or 'default'}"

    @property
    def label(self) -> str:
        if self.provider is Provider.dryrun:
            return "dryrun (not a model)"
        where = f" @ {self.base_url}" if self.base_url else ""
        return f"{self.provider.value}:{self.model}{where}"


class StudyFactor(Model):
    """A factor of the study design (goal, persona pair, a yes/no disclosure) and its levels."""

    name: str
    levels: list[str]

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        v = v.strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_ ]{0,39}", v):
            raise ValueError(
                f"factor name {v!r}: use letters, digits, spaces or _, starting with a letter"
            )
        return v

    @field_validator("levels")
    @classmethod
    def _valid_levels(cls, v: list[str]) -> list[str]:
        v = [lv.strip() for lv in v]
        if not v or any(not lv for lv in v):
            raise ValueError("a factor needs at least one non-empty level")
        if len(set(v)) != len(v):
            raise ValueError("factor levels must be distinct")
        return v


class DialogueOptions(Model):
    memory: Memory = Memory.summaries
    stop_phrases: list[str] = Field(default_factory=list)
    first_role: str | None = None  # the role that speaks first in round robin (default: first role)


class Experiment(Model):
    id: str = Field(default_factory=new_id)
    name: str
    kind: ExperimentKind = ExperimentKind.dialogue
    starting_message: str = "Start the experiment."
    roles: list[Role] = Field(default_factory=list)
    shared_sections: list[Section] = Field(default_factory=list)
    summarizer_sections: list[Section] = Field(default_factory=list)
    models: list[ModelRef] = Field(default_factory=lambda: [ModelRef()])
    factors: list[StudyFactor] = Field(default_factory=list)
    dialogue: DialogueOptions = Field(default_factory=DialogueOptions)
    game: dict[str, Any] = Field(default_factory=dict)  # commons / reputation parameters
    note: str = ""
    favourite: bool = False
    owner: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 1
    parent_id: str | None = None  # the experiment this one was duplicated or versioned from

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("an experiment needs a name")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [r.name.casefold() for r in self.roles]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"roles must have distinct names; repeated: {', '.join(dupes)}")
        if self.kind is ExperimentKind.dialogue and not self.roles:
            raise ValueError("a dialogue experiment needs at least one role")
        fnames = [f.name.casefold() for f in self.factors]
        if len(set(fnames)) != len(fnames):
            raise ValueError("study factors must have distinct names")
        factors = {f.name: f for f in self.factors}
        for sec in self.all_sections():
            if sec.factor is not None:
                if sec.factor not in factors:
                    raise ValueError(
                        f"section {sec.title!r} uses factor {sec.factor!r}, which is not defined"
                    )
                unknown = set(sec.variants) - set(factors[sec.factor].levels)
                if unknown:
                    raise ValueError(
                        f"section {sec.title!r} has text for unknown level(s) "
                        f"{sorted(unknown)} of factor {sec.factor!r}"
                    )
        if self.dialogue.first_role is not None and self.dialogue.first_role not in [
            r.name for r in self.roles
        ]:
            raise ValueError(f"first speaking role {self.dialogue.first_role!r} is not a role")
        return self

    def role(self, name: str) -> Role:
        for r in self.roles:
            if r.name.casefold() == name.casefold():
                return r
        raise KeyError(name)

    def all_sections(self) -> list[Section]:
        out = list(self.shared_sections) + list(self.summarizer_sections)
        for r in self.roles:
            out.extend(r.sections)
        return out

    def sections_for(self, role: str) -> list[Section]:
        """Shared and the role's private sections, in the order the user arranged them."""
        secs = list(self.shared_sections) + list(self.role(role).sections)
        return sorted(secs, key=lambda s: s.position)


# --------------------------------------------------------------------------- batches and cells


class ModelSet(Model):
    """One model choice of a batch grid: a default for every role, optional per-role overrides,
    and the summarizer's and manager's models (default: the default model)."""

    default: ModelRef = Field(default_factory=ModelRef)
    per_role: dict[str, ModelRef] = Field(default_factory=dict)
    summarizer: ModelRef | None = None
    manager: ModelRef | None = None

    def for_role(self, role: str) -> ModelRef:
        return self.per_role.get(role, self.default)

    @property
    def summarizer_model(self) -> ModelRef:
        return self.summarizer or self.default

    @property
    def manager_model(self) -> ModelRef:
        return self.manager or self.default

    @property
    def label(self) -> str:
        parts = [self.default.label]
        parts += [f"{r}={m.label}" for r, m in self.per_role.items()]
        return ", ".join(parts)


class BatchSpec(Model):
    """What a researcher asks for: the grid to run."""

    experiment_id: str
    model_sets: list[ModelSet] = Field(default_factory=lambda: [ModelSet()])
    total_messages: int = Field(default=20, ge=1)
    days: int = Field(default=1, ge=1)
    every_day_count: bool = False  # True: every day count 1..days; False: exactly `days`
    max_agents: dict[str, int] = Field(default_factory=dict)  # role -> maximum count (default 1)
    every_combination: bool = True  # False: only the maxima
    factor_levels: list[dict[str, str]] | None = None  # None: all combinations of levels
    speaker_selection: SpeakerSelection = SpeakerSelection.round_robin
    repeats: int = Field(default=1, ge=1)
    seed: int = 0
    # Conversations at once. Each endpoint has its own, tighter limit (Backends), so this only
    # needs to be high enough to keep every endpoint of a mixed batch busy.
    concurrency: int = Field(default=16, ge=1)
    rounds: int | None = Field(default=None, ge=1)  # games: rounds (commons) or steps (reputation)

    @field_validator("max_agents")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        for role, n in v.items():
            if n < 1:
                raise ValueError(f"maximum agents for role {role!r} must be at least 1, got {n}")
        return v


class GridCell(Model):
    """One point of a batch grid; a conversation runs exactly one cell."""

    counts: dict[str, int]  # role name -> number of agents
    days: int = Field(ge=1)
    total_messages: int = Field(ge=1)
    models: ModelSet
    factors: dict[str, str] = Field(default_factory=dict)
    speaker_selection: SpeakerSelection = SpeakerSelection.round_robin
    repeat: int = 0
    seed: int = 0
    rounds: int | None = None

    @property
    def counts_label(self) -> str:
        return "v".join(str(n) for n in self.counts.values())


class TokenUsage(Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Estimate(Model):
    conversations: int
    llm_calls: int
    tokens: int
    cost_usd: float | None = None


class Batch(Model):
    id: str = Field(default_factory=new_id)
    experiment_id: str
    experiment_version: int = 1
    spec: BatchSpec
    owner: str = ""
    status: Status = Status.pending
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    estimate: Estimate | None = None
    cells_total: int = 0
    error: str | None = None
    runner: str | None = None  # "host:pid" of the process running it (None: nobody)
    heartbeat_at: datetime | None = None  # that process's last sign of life


class Agent(Model):
    """A participant of a conversation, with its system prompt rendered for each day.

    ``system_prompts[d - 1]`` is the prompt sent on day ``d`` (placeholders such as ``<DAY>``
    filled in for that day); ``system_prompt`` is day 1's. Conversations stored before per-day
    prompts existed have no ``system_prompts``: they sent ``system_prompt`` on every day, and
    :meth:`system_prompt_for` keeps doing so, so resuming them sends what they sent before.
    """

    name: str
    role: str
    model: ModelRef
    system_prompt: str = ""
    system_prompts: list[str] = Field(default_factory=list)

    def system_prompt_for(self, day: int) -> str:
        """The system prompt this agent is (or was) sent on ``day`` (1-based)."""
        return _for_day(self.system_prompts, day, self.system_prompt)


def _for_day(per_day: list[str], day: int, fallback: str) -> str:
    """``per_day[day - 1]``; ``fallback`` for conversations stored without per-day prompts."""
    if not per_day:
        return fallback
    if day < 1 or day > len(per_day):
        raise SimulatorError(
            f"The conversation's prompts were rendered for {len(per_day)} day(s); there is no "
            f"prompt for day {day}.",
            title="No prompt for this day",
        )
    return per_day[day - 1]


class Conversation(Model):
    id: str = Field(default_factory=new_id)
    experiment_id: str
    experiment_version: int = 1
    batch_id: str | None = None
    cell_index: int = 0
    owner: str = ""
    kind: ExperimentKind = ExperimentKind.dialogue
    cell: GridCell
    status: Status = Status.pending
    seed: int = 0
    agents: list[Agent] = Field(default_factory=list)
    kickoff: str = ""
    summarizer_prompt: str = ""  # day 1's (see summarizer_prompts)
    summarizer_prompts: list[str] = Field(default_factory=list)  # day d's at [d - 1]
    manager_prompt: str = ""
    budget: int = 0  # agent messages planned
    messages_done: int = 0
    fallbacks: int = 0
    error: str | None = None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    favourite: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent_id: str | None = None  # a fork's origin
    forked_at: int | None = None
    # game parameters of this run when they differ from the experiment's (a fork with changes,
    # command-line options); None: the experiment's ``game``
    game: dict[str, Any] | None = None
    # what the run noticed about its models without failing, e.g.
    # "system_prompt_dropped:<model>" (the server's prompt token count shows it never read the
    # system message): stored so a reader of the data sees it
    warnings: list[str] = Field(default_factory=list)

    def summarizer_prompt_for(self, day: int) -> str:
        """The summarizer's system prompt for the summary of ``day`` (1-based)."""
        return _for_day(self.summarizer_prompts, day, self.summarizer_prompt)


class Message(Model):
    """One stored event of a conversation. ``seq`` is dense from 0 and unique per conversation."""

    conversation_id: str
    seq: int = Field(ge=0)
    day: int = Field(default=1, ge=0)
    turn: int = 0  # agent turn within the day (0 for the kickoff)
    speaker: str
    role: str
    kind: MessageKind = MessageKind.utterance
    recipients: list[str] | None = None  # None: public
    content: str = ""
    raw: str | None = None
    data: dict[str, Any] | None = None  # a structured action's validated answer
    model: ModelRef | None = None  # the model as configured (its params: what was asked for)
    # the parameters of the request that produced this answer, exactly as sent (names as on the
    # wire: Ollama's num_predict, a server's max_completion_tokens); {} when nothing was sent
    # (dryrun); None for messages no model wrote and for messages stored before this field
    sent_params: dict[str, Any] | None = None
    dropped_params: list[str] = Field(default_factory=list)  # configured, refused by the server
    usage: TokenUsage = Field(default_factory=TokenUsage)
    latency_ms: float = 0.0
    attempts: int = 1
    flags: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def id(self) -> str:
        return f"{self.conversation_id}:{self.seq:06d}"
