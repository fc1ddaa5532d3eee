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
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


# --------------------------------------------------------------------------- bounds

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what BSON stores and what the backends accept

#: The accepted range of every number a researcher types (batch specs, experiment files, TUI
#: forms), by field name. The same table gives the fields their bounds and the messages their
#: wording (``bound_text``); docs/spec.md lists it (a test keeps the two equal).
BOUNDS: dict[str, tuple[float, float]] = {
    "total_messages": (1, 10_000),  # agent messages per conversation
    "days": (1, 365),
    "max_agents": (1, 100),  # per role
    "repeats": (1, 1_000),
    "rounds": (1, 10_000),  # games: rounds (commons) or steps (reputation)
    "concurrency": (1, 1_000),  # conversations at once
    "seed": (INT64_MIN, INT64_MAX),
    "temperature": (0, 2),
    "top_p": (0, 1),
    "top_k": (1, 1_000),
    "num_ctx": (256, 1_048_576),
    "max_tokens": (1, 1_048_576),
    "latency_ms": (0, 600_000),  # dryrun: artificial delay per call (10 minutes at most)
    "timeout_s": (0.001, 3_600),  # per-model call timeout
    "max_attempts": (1, 20),  # per-model attempts per call
    "position": (-1_000_000, 1_000_000),  # a section's place among an agent's sections
    "max_cost_usd": (0, 1_000_000),  # a batch's budget cap in USD (see docs/cost.md)
    "max_total_tokens": (1, 1_000_000_000_000),  # a batch's budget cap in tokens
}
#: Conversations in one batch (model sets x factor combinations x speaker selections x agent
#: counts x day counts x repeats); more is almost surely a typo, and each one is a stored
#: document before anything runs.
MAX_CELLS = 10_000


#: Fields of ``BOUNDS`` that take fractions; the others are whole numbers.
FRACTIONAL = frozenset({"temperature", "top_p", "latency_ms", "timeout_s", "max_cost_usd"})


def bound_text(name: str) -> str:
    """``from 1 to 10,000`` for a field of ``BOUNDS``."""
    low, high = BOUNDS[name]
    return f"from {low:,} to {high:,}"


def bound_message(name: str, value: object) -> str:
    """What a researcher reads when a bounded field gets ``value``: the kind and the range."""
    kind = "a number" if name in FRACTIONAL else "a whole number"
    return f"must be {kind} {bound_text(name)}, not {value!r}"


def url_problem(url: str, *, bare_host: bool = False) -> str | None:
    """What is wrong with a server URL (``http(s)://host[:port][/path]``), or None. With
    ``bare_host`` a ``host[:port]`` without scheme is accepted too (Ollama's own convention)."""
    from urllib.parse import urlsplit

    text = url.strip()
    if bare_host and "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname or any(c.isspace() for c in text):
        return "needs a host name (e.g. http://127.0.0.1:8000/v1)"
    del port
    return None


def _int_field(name: str, default: int | None, **extra: Any) -> Any:
    """A whole number within ``BOUNDS[name]``; strict: true/false and 2.0 or "2" are refused."""
    low, high = BOUNDS[name]
    return Field(default=default, ge=low, le=high, strict=True, **extra)


def _float_field(name: str, default: float | None) -> Any:
    """A number within ``BOUNDS[name]`` (whole numbers too; true/false and text refused)."""
    low, high = BOUNDS[name]
    return Field(default=default, ge=low, le=high, strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- enumerations


_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class ExperimentKind(str):
    """The name of an experiment's kind, stored as the plain string it is: ``dialogue``,
    ``commons``, ``reputation``, or the name of any kind a package adds
    (``simulator/scenarios/registry.py``). Adding a kind does not touch the domain: here a kind
    is only a well-formed name; whether this version of the simulator knows it is the kind
    registry's to say (when an experiment is saved or imported, and when a conversation runs).

    Instances are interned, so ``kind is ExperimentKind.dialogue`` holds for a kind read back
    from the database, as it did when this was an enumeration (``.value`` too)."""

    __slots__ = ()
    _interned: ClassVar[dict[str, ExperimentKind]] = {}
    dialogue: ClassVar[ExperimentKind]
    commons: ClassVar[ExperimentKind]
    reputation: ClassVar[ExperimentKind]

    def __new__(cls, name: str) -> ExperimentKind:
        text = str.__str__(name) if isinstance(name, str) else name
        known = cls._interned.get(text) if isinstance(text, str) else None
        if known is not None:
            return known
        if not isinstance(text, str) or not _KIND_NAME.fullmatch(text):
            raise ValueError(
                f"{name!r} is not the name of an experiment kind (lowercase letters, digits "
                "and _, starting with a letter: dialogue, commons, reputation, ...)"
            )
        kind = super().__new__(cls, text)
        cls._interned[text] = kind
        return kind

    @property
    def value(self) -> str:
        """The name as stored."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"ExperimentKind({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExperimentKind, (self.value,))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                str.__str__, return_schema=core_schema.str_schema()
            ),
        )


ExperimentKind.dialogue = ExperimentKind("dialogue")
ExperimentKind.commons = ExperimentKind("commons")
ExperimentKind.reputation = ExperimentKind("reputation")


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


def speaker_methods(value: Any) -> Any:
    """A batch's speaker selection methods: one method (``random``) or a list of distinct ones
    (``[round_robin, random]``), each a grid dimension's level."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("name at least one speaker selection method")
    known = [s.value for s in SpeakerSelection]
    methods: list[SpeakerSelection] = []
    for item in items:
        if isinstance(item, SpeakerSelection):
            method = item
        elif isinstance(item, str) and item in known:
            method = SpeakerSelection(item)
        else:
            raise ValueError(
                f"{item!r} is not a speaker selection method; use one of {', '.join(known)}"
            )
        if method in methods:
            raise ValueError(f"{method.value} is listed twice")
        methods.append(method)
    return methods


#: One or more speaker selection methods (a single value is accepted and becomes a list of one).
SpeakerMethods = Annotated[list[SpeakerSelection], BeforeValidator(speaker_methods)]


class Status(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"  # stopped on purpose: ``simulator cancel``, the TUI's cancel
    interrupted = "interrupted"  # stopped from outside: Ctrl-C, SIGTERM, app closed, database lost

    @property
    def finished(self) -> bool:
        return self in (Status.done, Status.failed)


class CacheMode(StrEnum):
    """How a batch uses the response cache (docs/cost.md)."""

    off = "off"  # neither read nor written: every call goes to its model
    reuse = "reuse"  # a stored answer is served; the others are asked and stored
    refresh = "refresh"  # every call is asked, and its answer replaces the stored one


class MessageKind(StrEnum):
    kickoff = "kickoff"
    utterance = "utterance"
    summary = "summary"
    action = "action"
    system = "system"


class Decision(StrEnum):
    """Where a game decision stored in a message came from (``Message.decision``)."""

    answer = "answer"  # the model's first answer was valid
    reasked = "reasked"  # valid after one or more re-asks
    fallback = "fallback"  # never valid: the engine applied the documented default


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
    position: int = _int_field("position", 0)
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

    temperature: float | None = _float_field("temperature", 0.7)
    top_p: float | None = _float_field("top_p", 0.9)
    top_k: int | None = _int_field("top_k", 40)
    num_ctx: int | None = _int_field("num_ctx", 8192)
    max_tokens: int | None = _int_field("max_tokens", 512)
    seed: int | None = _int_field("seed", None)


#: ``ModelRef.options`` the app reads, and their types (other keys are provider extras, kept).
_NUMERIC_OPTIONS = {"latency_ms": False, "timeout_s": False, "max_attempts": True}  # whole?
_TEXT_OPTIONS = ("policy", "manager_answer")
_BOOL_OPTIONS = ("prompt_cache_key",)  # OpenAI: send a prompt_cache_key (default: to OpenAI only)


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options the app reads must be numbers within their bounds (or text): a typo such as
    ``latency_ms: abc`` is refused here rather than failing the run later."""
    for key, whole in _NUMERIC_OPTIONS.items():
        if key not in options or options[key] is None:
            continue
        value = options[key]
        low, high = BOUNDS[key]
        number = isinstance(value, int) if whole else isinstance(value, int | float)
        # value != value: NaN, which no comparison refuses
        if isinstance(value, bool) or not number or value != value or not low <= value <= high:
            raise ValueError(f"{key} {bound_message(key, value)}")
    for key in _TEXT_OPTIONS:
        if key in options and options[key] is not None and not isinstance(options[key], str):
            raise ValueError(f"{key} must be text, not {options[key]!r}")
    for key in _BOOL_OPTIONS:
        if key in options and options[key] is not None and not isinstance(options[key], bool):
            raise ValueError(f"{key} must be true or false, not {options[key]!r}")
    keep_alive = options.get("keep_alive")  # Ollama: "10m", "1h", seconds, or -1 (forever)
    if keep_alive is not None and (
        isinstance(keep_alive, bool)
        or not isinstance(keep_alive, int | float | str)
        or (
            isinstance(keep_alive, str)
            and not re.fullmatch(r"-?\d+(\.\d+)?(ms|s|m|h)?", keep_alive)
        )
    ):
        raise ValueError(
            f"keep_alive must be a duration such as 10m, 1h or 300 (seconds), not {keep_alive!r}"
        )
    return options


#: The dryrun backend's model name, and the name it had before (accepted on input only).
DRYRUN_MODEL = "dryrun"
DRYRUN_ALIAS = "script"


class PoolEndpoint(Model):
    """One server of a model pool: where it is, which key it uses, how many calls at once.

    ``api_key_env`` names the environment variable holding its key (never the key itself);
    ``concurrency`` is its own limit (None: the provider's, OLLAMA_CONCURRENCY or
    OPENAI_CONCURRENCY)."""

    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    name: str | None = None  # how it is shown and stored (default: its base_url and key name)

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", v):
            # the value is not repeated: it may be the key, pasted in the wrong place
            raise ValueError(
                "api_key_env must be the name of an environment variable (letters, digits, _) "
                "that holds the key, never the key itself"
            )
        return v

    @property
    def label(self) -> str:
        """What a message stores as the endpoint that answered: never a key."""
        if self.name:
            return self.name
        where = self.base_url or "default"
        return f"{where} [{self.api_key_env}]" if self.api_key_env else where


class ModelRef(Model):
    """Which model answers, where, and with which parameters.

    The provider is explicit (never guessed from the model name). ``base_url`` points an ``openai``
    reference at any OpenAI-compatible server, or an ``ollama`` reference at another host.
    ``options`` carries provider-specific extras (for dryrun: ``latency_ms``, ``policy``).
    """

    provider: Provider = Provider.dryrun
    model: str = DRYRUN_MODEL
    base_url: str | None = None
    params: SamplingParams = Field(default_factory=SamplingParams)
    options: dict[str, Any] = Field(default_factory=dict)
    # a model pool: the same model served by several servers (or keys); each call goes to the
    # least loaded healthy one (llm/pools.py). Empty: the one server of ``base_url``. Left out
    # of every dump when empty, so a model that is not a pool dumps (and hashes: cell seeds,
    # cache keys) exactly as before pools existed.
    endpoints: list[PoolEndpoint] = Field(default_factory=list, exclude_if=lambda v: not v)

    @field_validator("model")
    @classmethod
    def _model_not_empty(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip()
        if not v:
            raise ValueError("a model name is required")
        if v == DRYRUN_ALIAS and info.data.get("provider", Provider.dryrun) is Provider.dryrun:
            return DRYRUN_MODEL  # the old name, still read from stored data and old specs
        return v

    @field_validator("options")
    @classmethod
    def _known_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_options(v)

    @model_validator(mode="after")
    def _valid_base_url(self) -> ModelRef:
        if self.base_url is not None and self.base_url.strip():
            problem = url_problem(self.base_url, bare_host=self.provider is Provider.ollama)
            if problem:
                raise ValueError(f"base_url {self.base_url!r}: {problem}")
        labels = [e.label for e in self.endpoints]
        for i, e in enumerate(self.endpoints):
            if e.base_url is not None and e.base_url.strip():
                problem = url_problem(e.base_url, bare_host=self.provider is Provider.ollama)
                if problem:
                    raise ValueError(f"endpoints.{i}.base_url {e.base_url!r}: {problem}")
            if labels.count(e.label) > 1:
                raise ValueError(f"endpoints.{i}: {e.label!r} is listed twice")
        if self.endpoints and self.base_url:
            raise ValueError("give either base_url or endpoints (a pool), not both")
        return self

    @property
    def endpoint(self) -> str:
        """Identifies the server that answers: used for per-endpoint concurrency limits."""
        if self.endpoints:
            return f"{self.provider.value}:pool({', '.join(e.label for e in self.endpoints)})"
        return f"{self.provider.value}:{self.base_url or 'default'}"

    def member(self, endpoint: PoolEndpoint) -> ModelRef:
        """This model as served by one endpoint of its pool."""
        options = dict(self.options)
        if endpoint.api_key_env:
            options["api_key_env"] = endpoint.api_key_env
        return self.model_copy(
            update={"base_url": endpoint.base_url, "options": options, "endpoints": []}
        )

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
    # LLM judges' rubrics carried by the experiment, each as a rubric file's ``rubric:`` mapping
    # (docs/annotations.md#rubrics); ``simulator annotate judge --rubric NAME`` finds them by name
    rubrics: list[dict[str, Any]] = Field(default_factory=list)
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

    @field_validator("rubrics", mode="before")
    @classmethod
    def _unwrap_rubrics(cls, v: Any) -> Any:
        """A rubric file's whole content (``format:``, ``rubric: {...}``) is taken as its rubric."""
        if not isinstance(v, list):
            return v
        out = []
        for item in v:
            if (
                isinstance(item, dict)
                and isinstance(item.get("rubric"), dict)
                and set(item) <= {"rubric", "format", "format_version"}
            ):
                item = item["rubric"]
            out.append(item)
        return out

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
        self._check_rubrics()
        return self

    def _check_rubrics(self) -> None:
        """Each rubric passes the same checks as a rubric file (and its placeholders name this
        experiment's factors); the names are distinct. The check lives with the rubric parser
        (pure code, no I/O), imported here so that every path that builds an experiment (file,
        spec, editor, store) refuses a bad rubric the same way."""
        if not self.rubrics:
            return
        from simulator.domain.rubric import RubricError, parse_rubric

        seen: set[str] = set()
        for i, raw in enumerate(self.rubrics):
            name = str(raw.get("name") or "").strip() or f"#{i + 1}"
            where = f"rubrics.{i} (rubric {name!r})"
            try:
                rubric = parse_rubric(raw, source=where)
                rubric.check_placeholders([f.name for f in self.factors], self.name)
            except RubricError as exc:
                raise ValueError(str(exc)) from None
            if rubric.name.casefold() in seen:
                raise ValueError(f"{where}: another rubric of this experiment has this name")
            seen.add(rubric.name.casefold())

    def rubric_names(self) -> list[str]:
        return [str(r.get("name") or "").strip() for r in self.rubrics]

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
    total_messages: int = _int_field("total_messages", 20)
    days: int = _int_field("days", 1)
    every_day_count: StrictBool = False  # True: every day count 1..days; False: exactly `days`
    # role -> maximum count (default 1)
    max_agents: dict[str, int] = Field(default_factory=dict)
    every_combination: StrictBool = True  # False: only the maxima
    factor_levels: list[dict[str, str]] | None = None  # None: all combinations of levels
    # a grid dimension: each cell runs one method (a single value is accepted)
    speaker_selection: SpeakerMethods = Field(
        default_factory=lambda: [SpeakerSelection.round_robin]
    )
    repeats: int = _int_field("repeats", 1)
    seed: int = _int_field("seed", 0)
    # Conversations at once. Each endpoint has its own, tighter limit (Backends), so this only
    # needs to be high enough to keep every endpoint of a mixed batch busy.
    concurrency: int = _int_field("concurrency", 16)
    rounds: int | None = _int_field("rounds", None)  # games: rounds (commons) or steps (reputation)
    # the response cache (docs/cost.md): off for a new batch, reuse for `simulator rerun`
    cache: CacheMode = CacheMode.off
    # budget caps of the whole batch (max_tokens is a per-request limit): the batch stops,
    # interrupted and resumable, before a call that would pass one (docs/cost.md)
    max_cost_usd: float | None = _float_field("max_cost_usd", None)
    max_total_tokens: int | None = _int_field("max_total_tokens", None)

    @field_validator("max_agents", mode="before")
    @classmethod
    def _within_bounds(cls, v: object) -> object:
        if not isinstance(v, dict):
            return v
        low, high = BOUNDS["max_agents"]
        for role, n in v.items():
            if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
                raise ValueError(
                    f"maximum agents for role {role!r} must be a whole number "
                    f"{bound_text('max_agents')}, not {n!r}"
                )
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
    # the part of prompt_tokens the server served from its prompt cache, as it reports it
    # (OpenAI's and vLLM's usage.prompt_tokens_details.cached_tokens, llama.cpp's cache_n)
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


class Estimate(Model):
    conversations: int
    llm_calls: int
    tokens: int
    cost_usd: float | None = None
    # calls of earlier batches of the experiment whose measured lengths the estimate used
    # (0: the assumed lengths; see engine.grid.MeasuredRates)
    measured_calls: int = 0


class BatchWorker(Model):
    """A process working on a batch: its id (``host:pid/n``) and its last heartbeat."""

    runner: str
    heartbeat_at: datetime
    joined_at: datetime = Field(default_factory=utcnow)


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
    # why it stopped before the end (status interrupted or cancelled): "Ctrl-C (SIGINT)",
    # "the database stopped answering", "cancelled by alice" ...; None while it runs or when done
    stop_reason: str | None = None
    # batches run before per-conversation leases: "host:pid/n" of the process that ran it and
    # its last sign of life; read (never written) so such a lease is still respected
    runner: str | None = None
    heartbeat_at: datetime | None = None
    # the processes working on it now ("simulator worker", a run, a resume), each with its last
    # sign of life; which conversation each runs is the conversation's ``runner``
    workers: list[BatchWorker] = Field(default_factory=list)
    # the user's price table when the batch was created (the spec's prices: over the
    # PRICE_TABLE file; dated defaults for OpenAI's models apply beneath it): what its calls
    # are priced at, on every run (llm/prices.py)
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)


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
    # model calls stored (messages with a model: agent turns, summaries, manager choices, game
    # decisions): progress against ``engine.grid.planned_calls``; 0 on conversations stored
    # before it was counted
    calls_done: int = 0
    fallbacks: int = 0
    error: str | None = None
    stop_reason: str | None = None  # why it stopped before the end (see Batch.stop_reason)
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
    # the conversation's lease: the worker running it ("host:pid/n") and until when
    # (milliseconds since the epoch: a whole number compares exactly on every server), renewed
    # while it runs; another worker takes the conversation over once it has expired
    runner: str | None = None
    lease_until: int | None = None
    # what the run noticed about its models without failing, e.g.
    # "system_prompt_dropped:<model>" (the server's prompt token count shows it never read the
    # system message): stored so a reader of the data sees it
    warnings: list[str] = Field(default_factory=list)

    def summarizer_prompt_for(self, day: int) -> str:
        """The summarizer's system prompt for the summary of ``day`` (1-based)."""
        return _for_day(self.summarizer_prompts, day, self.summarizer_prompt)


class Retry(Model):
    """A failed attempt of a model call that was tried again (timeout, 429, 5xx)."""

    attempt: int  # 1-based: the attempt that failed
    reason: str  # "timeout: no answer from ... within 120 s", "429: ...", "connection: ..."
    wait_s: float = 0.0  # the pause before the next attempt


class CacheRecord(Model):
    """How the response cache took part in a message (``Message.cache``; None when the batch's
    cache was off). See docs/cost.md."""

    hit: bool  # the stored answer was served from the cache: no call was made for it
    key: str  # the cache key (``responses._id``) of the stored answer
    replicate: list[int] = Field(default_factory=list)  # [repeat, position]: see llm/cache.py
    # the request digest (the key without its replicate index) of every call made for this
    # message, in order: what a resumed conversation counts identical requests with
    requests: list[str] = Field(default_factory=list)
    hits: int = 0  # how many of those calls were served from the cache
    # a hit's original call: model, sent_params, dropped_params, usage, latency_ms, attempts,
    # endpoint, created_at, and the batch and conversation it was made for
    original: dict[str, Any] | None = None


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
    retries: list[Retry] = Field(default_factory=list)  # the failed attempts before the answer
    flags: list[str] = Field(default_factory=list)
    #: Provenance of a decision (a structured action): the model's answer, an answer after
    #: re-asks, or a fallback (the default the engine applied). None for other messages.
    decision: Decision | None = None
    #: Why a decision was re-asked or fell back (the validation errors), else None.
    decision_cause: str | None = None
    #: What the calls for this message cost by the batch's price table (cached prompt tokens at
    #: the cached-input price); 0 when served from the response cache; None when no price is
    #: known or no model was called.
    cost_usd: float | None = None
    #: The response cache's part in this message (None: the cache was off).
    cache: CacheRecord | None = None
    #: Which endpoint of the model's pool answered (``PoolEndpoint.label``: its URL and the
    #: name of its key's variable, never a key); None when the model is not a pool.
    endpoint: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def id(self) -> str:
        return f"{self.conversation_id}:{self.seq:06d}"

    @property
    def calls(self) -> int:
        """Model calls made for this message (re-asks included, cache hits and retries not)."""
        if self.model is None:
            return 0
        made = self.attempts - len(self.retries) - (self.cache.hits if self.cache else 0)
        return max(0, made)


class CachedResponse(Model):
    """An answer in the response cache (collection ``responses``): ``id`` is its key, the
    SHA-256 of the canonical JSON of the key fields (``simulator.llm.cache``). The key fields
    kept here (all but the messages, whose digest is in ``request``) let a reader see what an
    answer is for; the rest is the answer and its original call's provenance."""

    id: str  # the key
    request: str  # the request digest: the key without its replicate index
    replicate: list[int]  # [the cell's repeat, the position among identical requests]
    provider: str
    model: str  # the model (or model pool) name
    model_digest: str | None = None  # the server's digest of the model, where it reports one
    params: dict[str, Any] = Field(default_factory=dict)  # sampling parameters as sent
    seed: int = 0  # the conversation's seed
    # the answer
    text: str
    finish_reason: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    prompt_tokens_total: int | None = None
    # the original call: provenance, not key
    sent_params: dict[str, Any] = Field(default_factory=dict)
    dropped_params: list[str] = Field(default_factory=list)
    latency_ms: float = 0.0
    attempts: int = 1
    endpoint: str = ""  # the server that answered (ModelRef.endpoint)
    model_ref: ModelRef | None = None  # the model as configured for that call
    batch_id: str | None = None
    conversation_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    def provenance(self) -> dict[str, Any]:
        """The original call, as a served message records it (``CacheRecord.original``)."""
        return {
            "model": None if self.model_ref is None else self.model_ref.model_dump(mode="json"),
            "sent_params": dict(self.sent_params),
            "dropped_params": list(self.dropped_params),
            "usage": self.usage.model_dump(),
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "endpoint": self.endpoint,
            "model_digest": self.model_digest,
            "created_at": self.created_at.isoformat(),
            "batch_id": self.batch_id,
            "conversation_id": self.conversation_id,
        }


class LedgerRow(Model):
    """One model's calls for one role and purpose in a batch (``Ledger.rows``)."""

    model: str  # provider:model
    role: str  # the caller's role: an agent role, "summarizer", "manager", a game role
    purpose: str = "utterance"  # utterance, summary, manager, action, other
    calls: int = 0  # calls made to a server
    cache_hits: int = 0  # answers served from the response cache (no call made)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the server served from its prompt cache
    prompt_chars: int = 0  # characters of the prompts sent (tokens per character, learnt)
    cost_usd: float = 0.0  # of the priced calls
    unpriced_calls: int = 0  # calls of a model without a price: their cost is unknown

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Ledger(Model):
    """What a batch spent: calls, tokens, cached tokens and cost by model, role and purpose.
    Stored in ``ledgers`` under the batch's id; see docs/cost.md."""

    batch_id: str
    rows: list[LedgerRow] = Field(default_factory=list)
    updated_at: datetime = Field(default_factory=utcnow)
    # the run writing it (``BatchRunner.runner_id``); None once that run ended and wrote it
    # whole: a ledger left with a runner is rebuilt from the stored messages
    runner: str | None = None

    def row(self, model: str, role: str, purpose: str) -> LedgerRow:
        for r in self.rows:
            if (r.model, r.role, r.purpose) == (model, role, purpose):
                return r
        row = LedgerRow(model=model, role=role, purpose=purpose)
        self.rows = [*self.rows, row]
        return row

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def cache_hits(self) -> int:
        return sum(r.cache_hits for r in self.rows)

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.rows)

    @property
    def cached_tokens(self) -> int:
        return sum(r.cached_tokens for r in self.rows)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.rows)

    @property
    def cost_usd(self) -> float:
        return round(sum(r.cost_usd for r in self.rows), 8)

    @property
    def unpriced_calls(self) -> int:
        return sum(r.unpriced_calls for r in self.rows)

    @property
    def cached_share(self) -> float | None:
        """The share of prompt tokens the servers served from their prompt caches."""
        prompt = self.prompt_tokens
        return self.cached_tokens / prompt if prompt else None

    def by_model_and_role(self) -> list[LedgerRow]:
        """One row per (model, role), its purposes summed (a role's utterances and actions, the
        summarizer's summaries), in the order the rows were first written."""
        merged: dict[tuple[str, str], LedgerRow] = {}
        for r in self.rows:
            key = (r.model, r.role)
            m = merged.get(key)
            if m is None:
                merged[key] = r.model_copy(update={"purpose": "all"})
                continue
            for f in ("calls", "cache_hits", "prompt_tokens", "completion_tokens",
                      "cached_tokens", "prompt_chars", "unpriced_calls"):  # fmt: skip
                setattr(m, f, getattr(m, f) + getattr(r, f))
            m.cost_usd = round(m.cost_usd + r.cost_usd, 8)
        return list(merged.values())
