"""The batch spec file (YAML or JSON): which experiment to run and the grid to run it on.

Parsing happens in two steps, both before anything runs:

1. ``load_spec(path)`` / ``parse_spec(data)`` check the file's shape and values on their own and
   return a ``RunSpec`` (the experiment reference plus the normalised batch request);
2. ``RunSpec.batch_spec(experiment)`` checks the request against the experiment (role names,
   factor names and levels) and returns the domain ``BatchSpec``.

Every problem is reported with the dotted path of the offending field, e.g.
``batch.max_agents.guard: must be at least 1``; all problems of a file are reported at once in one
``SpecError``. The format is documented in docs/spec.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.domain import (
    BatchSpec,
    CacheMode,
    Experiment,
    ModelRef,
    ModelSet,
    Provider,
    SpeakerSelection,
)
from simulator.domain.errors import SpecError
from simulator.domain.models import BOUNDS, Model, SpeakerMethods, bound_message
from simulator.engine.grid import check_grid_size

Problem = tuple[str, str]  # (dotted field path, message)
M = TypeVar("M", bound=BaseModel)

TOP_LEVEL_KEYS = ("experiment", "batch", "prices")
PRICE_KEYS = ("input_per_1k", "output_per_1k")  # required (or their per-million forms)
OPTIONAL_PRICE_KEYS = ("cached_input_per_1k", "as_of")  # cached prompt tokens; the price's date
PER_MILLION_KEYS = {  # USD per 1M tokens
    "input": "input_per_1k",
    "output": "output_per_1k",
    "cached_input": "cached_input_per_1k",
}
MODEL_SET_KEYS = ("default", "per_role", "summarizer", "manager")
EXPERIMENT_REF_KEYS = ("id", "name", "file", "example")


# --------------------------------------------------------------------------- YAML without surprises


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no type hints
    """YAML 1.2 booleans: only true/false are booleans, so levels such as ``yes``/``no``/``on``
    stay the strings the researcher typed (YAML 1.1 would turn them into True/False)."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


MAX_FILE_BYTES = 20_000_000  # a spec or experiment file larger than this is not one


def load_yaml(text: str, source: str = "<text>") -> Any:
    """Parse YAML (or JSON, which is YAML) with YAML 1.2 booleans; errors name line and column."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{source}{where}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"{source}: not a usable YAML file: {_parse_problem(exc)}") from None


def _parse_problem(exc: BaseException) -> str:
    """What a parser's ValueError or RecursionError means for the user."""
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if "digits" in str(exc):
        return "it holds a number with thousands of digits"
    return str(exc)


def read_data_file(path: Path) -> Any:
    """A YAML or JSON file's content (JSON when the name ends in .json)."""
    try:
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "is not a regular file"
            if not path.exists():
                raise FileNotFoundError
            raise SpecError(f"{path}: {what}; give a YAML or JSON file.")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError(
                f"{path}: {path.stat().st_size:,} bytes; a spec or experiment file is at most "
                f"{MAX_FILE_BYTES:,} bytes."
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read ({exc}).") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"{path} at line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise SpecError(f"{path}: not a usable JSON file: {_parse_problem(exc)}") from None
    return load_yaml(text, str(path))


# --------------------------------------------------------------------------- error paths


def dotted(loc: Iterable[Any], prefix: str = "") -> str:
    """``("batch", "models", 0, "default")`` -> ``batch.models.0.default``."""
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc]
    return ".".join(parts) or "(top level)"


_NUMBER_ERRORS = frozenset(
    {
        "greater_than_equal",
        "greater_than",
        "less_than_equal",
        "less_than",
        "int_parsing",
        "int_type",
        "int_from_float",
        "float_parsing",
        "float_type",
        "finite_number",
    }
)


def _bounded_field(loc: Sequence[Any]) -> str | None:
    """The ``BOUNDS`` name of the field at ``loc`` (``max_agents`` for ``max_agents.<role>``)."""
    names = [p for p in loc if isinstance(p, str)]
    if len(names) >= 2 and names[-2] == "max_agents":
        return "max_agents"
    return names[-1] if names and names[-1] in BOUNDS else None


def _friendly(err: Mapping[str, Any]) -> str:
    """A pydantic error as a short sentence a researcher understands."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    bounded = _bounded_field(err.get("loc", ()))
    if bounded is not None and kind in _NUMBER_ERRORS:
        return bound_message(bounded, err.get("input"))
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return f"must be at least {bound}" if kind == "greater_than_equal" else f"must be > {bound}"
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return f"must be at most {bound}" if kind == "less_than_equal" else f"must be < {bound}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number, not {err.get('input')!r}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, not {err.get('input')!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false, not {err.get('input')!r}"
    if kind in ("string_type",):
        return f"must be text, not {err.get('input')!r}"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see docs/spec.md)"
    if kind == "enum":
        return f"must be one of {ctx.get('expected', '')}, not {err.get('input')!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping (key: value pairs)"
    if kind == "list_type":
        return "must be a list"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def problems_from(exc: ValidationError, prefix: str) -> list[Problem]:
    return [(dotted(e["loc"], prefix), _friendly(e)) for e in exc.errors()]


def raise_problems(problems: Sequence[Problem], source: str) -> None:
    """One SpecError listing every problem, or nothing."""
    if not problems:
        return
    lines = [f"{path}: {msg}" for path, msg in problems]
    if len(lines) == 1:
        raise SpecError(f"{source}: {lines[0]}")
    body = "\n".join(f"  {line}" for line in lines)
    raise SpecError(f"{source} has {len(lines)} problems:\n{body}")


def _validate(cls: type[M], data: object, path: str, problems: list[Problem]) -> M | None:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from(exc, path))
        return None


# --------------------------------------------------------------------------- models


def parse_model_ref(value: object, path: str, problems: list[Problem]) -> ModelRef | None:
    """A model: ``dryrun``, ``"ollama:llama3"``, ``"openai:gpt-4o-mini"``, or a mapping of ModelRef
    fields (provider, model, base_url, params, options)."""
    if isinstance(value, str):
        text = value.strip()
        if text == Provider.dryrun.value:
            return ModelRef()
        provider, sep, name = text.partition(":")
        if not sep or provider not in {p.value for p in Provider} or not name.strip():
            problems.append(
                (
                    path,
                    f"{value!r} is not a model; write provider:model (e.g. ollama:llama3, "
                    "openai:gpt-4o-mini) or dryrun, or a mapping with provider and model",
                )
            )
            return None
        return ModelRef(provider=Provider(provider), model=name.strip())
    if isinstance(value, Mapping):
        data = dict(value)
        if data.get("provider") == Provider.dryrun.value:
            data.setdefault("model", "dryrun")
        return _validate(ModelRef, data, path, problems)
    problems.append((path, "must be a model: provider:model text or a mapping"))
    return None


def _parse_model_set(value: object, path: str, problems: list[Problem]) -> ModelSet | None:
    if isinstance(value, Mapping) and any(k in value for k in MODEL_SET_KEYS):
        unknown = [k for k in value if k not in MODEL_SET_KEYS]
        for key in unknown:
            problems.append(
                (f"{path}.{key}", f"unknown field; a model set has {', '.join(MODEL_SET_KEYS)}")
            )
        before = len(problems)
        default = None
        if "default" in value:
            default = parse_model_ref(value["default"], f"{path}.default", problems)
        else:
            problems.append(
                (
                    f"{path}.default",
                    "is required: the model of roles without their own, and of the summarizer "
                    "and the manager unless they have theirs",
                )
            )
        per_role: dict[str, ModelRef] = {}
        roles = value.get("per_role") or {}
        if not isinstance(roles, Mapping):
            problems.append((f"{path}.per_role", "must be a mapping of role name to model"))
            roles = {}
        for role, ref in roles.items():
            parsed = parse_model_ref(ref, f"{path}.per_role.{role}", problems)
            if parsed is not None:
                per_role[str(role)] = parsed
        summarizer = manager = None
        if value.get("summarizer") is not None:
            summarizer = parse_model_ref(value["summarizer"], f"{path}.summarizer", problems)
        if value.get("manager") is not None:
            manager = parse_model_ref(value["manager"], f"{path}.manager", problems)
        if len(problems) > before or default is None:
            return None
        return ModelSet(default=default, per_role=per_role, summarizer=summarizer, manager=manager)
    ref = parse_model_ref(value, path, problems)
    return None if ref is None else ModelSet(default=ref)


# --------------------------------------------------------------------------- the batch section


def _as_in_batch_spec(name: str) -> Any:
    """BatchSpec's own field (type strictness, default and bounds): one definition of each."""
    return BatchSpec.model_fields[name]


class _BatchScalars(Model):
    """The plain fields of the ``batch:`` section, exactly as BatchSpec defines them."""

    total_messages: int = _as_in_batch_spec("total_messages")
    days: int = _as_in_batch_spec("days")
    every_day_count: bool = _as_in_batch_spec("every_day_count")
    every_combination: bool = _as_in_batch_spec("every_combination")
    speaker_selection: SpeakerMethods = _as_in_batch_spec("speaker_selection")
    repeats: int = _as_in_batch_spec("repeats")
    seed: int = _as_in_batch_spec("seed")
    concurrency: int = _as_in_batch_spec("concurrency")
    rounds: int | None = _as_in_batch_spec("rounds")
    cache: CacheMode = CacheMode.off
    max_cost_usd: float | None = _as_in_batch_spec("max_cost_usd")
    max_total_tokens: int | None = _as_in_batch_spec("max_total_tokens")


BATCH_KEYS = (*_BatchScalars.model_fields, "models", "max_agents", "factors")


@dataclass(frozen=True)
class BatchRequest:
    """The ``batch:`` section, checked on its own; ``models`` None means the experiment's first
    model, ``"all"`` one model set per model the experiment offers."""

    scalars: _BatchScalars
    models: list[ModelSet] | str | None
    model_paths: list[str]  # the spec path of each model set, for messages
    max_agents: dict[str, int]
    factor_levels: list[dict[str, str]] | None  # None: every combination


def _parse_batch(value: object, problems: list[Problem]) -> BatchRequest | None:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        problems.append(("batch", "must be a mapping (see docs/spec.md)"))
        return None
    for key in value:
        if key not in BATCH_KEYS:
            problems.append(
                (f"batch.{key}", f"unknown field; expected one of {', '.join(BATCH_KEYS)}")
            )
    scalars_in = {k: v for k, v in value.items() if k in _BatchScalars.model_fields}
    scalars = _validate(_BatchScalars, scalars_in, "batch", problems)
    if scalars is not None and SpeakerSelection.manual in scalars.speaker_selection:
        problems.append(
            (
                "batch.speaker_selection",
                "manual selection needs a person at the keyboard; a batch can use "
                "round_robin, random or auto",
            )
        )
    if scalars is not None and scalars.days > scalars.total_messages:
        problems.append(
            (
                "batch.days",
                f"at most total_messages ({scalars.total_messages}): every day needs at "
                "least one message",
            )
        )

    models: list[ModelSet] | str | None = None
    paths: list[str] = []
    raw_models = value.get("models")
    if raw_models == "all":
        models = "all"
    elif isinstance(raw_models, list):
        if not raw_models:
            problems.append(("batch.models", "must name at least one model"))
        models = []
        for i, item in enumerate(raw_models):
            ms = _parse_model_set(item, f"batch.models.{i}", problems)
            if ms is not None:
                models.append(ms)
                paths.append(f"batch.models.{i}")
    elif raw_models is not None:
        ms = _parse_model_set(raw_models, "batch.models", problems)
        models = [ms] if ms is not None else []
        paths.append("batch.models")

    max_agents: dict[str, int] = {}
    raw_max = value.get("max_agents") or {}
    if not isinstance(raw_max, Mapping):
        problems.append(("batch.max_agents", "must be a mapping of role name to a number"))
        raw_max = {}
    low, high = BOUNDS["max_agents"]
    for role, n in raw_max.items():
        path = f"batch.max_agents.{role}"
        if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
            problems.append((path, bound_message("max_agents", n)))
        else:
            max_agents[str(role)] = n

    factor_levels: list[dict[str, str]] | None = None
    raw_factors = value.get("factors", "all")
    if raw_factors in ("all", None):
        factor_levels = None
    elif isinstance(raw_factors, list):
        factor_levels = []
        for i, item in enumerate(raw_factors):
            if not isinstance(item, Mapping) or not item:
                problems.append((f"batch.factors.{i}", "must be a mapping of factor name to level"))
                continue
            levels: dict[str, str] = {}
            for name, level in item.items():
                if isinstance(level, bool) or not isinstance(level, str | int | float):
                    problems.append(
                        (f"batch.factors.{i}.{name}", f"must be a level (text), not {level!r}")
                    )
                else:
                    levels[str(name)] = str(level)
            factor_levels.append(levels)
    else:
        problems.append(("batch.factors", '"all" or a list of mappings of factor name to level'))
    if scalars is None:
        return None
    return BatchRequest(scalars, models, paths, max_agents, factor_levels)


# --------------------------------------------------------------------------- the experiment section


@dataclass(frozen=True)
class ExperimentRef:
    """Which experiment a spec runs: a stored one (by id or name) or a definition (inline, a file,
    or a built-in example) that ``simulator run`` stores before running."""

    id: str | None = None
    name: str | None = None
    definition: Experiment | None = None
    source: str = ""  # "inline", a file path or "example NAME": where a definition came from

    @property
    def label(self) -> str:
        if self.definition is not None:
            return f"{self.definition.name!r} ({self.source})"
        return f"id {self.id}" if self.id else f"{self.name!r}"


def _parse_experiment(
    value: object, base_dir: Path | None, problems: list[Problem]
) -> ExperimentRef | None:
    if isinstance(value, str) and value.strip():
        # Either an id or a name: resolved against the store (id first).
        return ExperimentRef(id=value.strip(), name=value.strip())
    if not isinstance(value, Mapping):
        problems.append(
            (
                "experiment",
                "is required: an experiment id or name, {file: PATH}, {example: NAME}, or an "
                "inline experiment definition",
            )
        )
        return None
    keys = set(value)
    if keys and keys <= set(EXPERIMENT_REF_KEYS):
        if len(keys) != 1:
            problems.append(("experiment", f"give only one of {', '.join(sorted(keys))}"))
            return None
        (key,) = keys
        ref = value[key]
        if not isinstance(ref, str) or not ref.strip():
            problems.append((f"experiment.{key}", "must be non-empty text"))
            return None
        ref = ref.strip()
        if key == "id":
            return ExperimentRef(id=ref)
        if key == "name":
            return ExperimentRef(name=ref)
        if key == "example":
            from simulator.examples import example_names

            if ref not in example_names():
                problems.append(
                    (
                        "experiment.example",
                        f"no example {ref!r}; there are: {', '.join(example_names())}",
                    )
                )
                return None
            return ExperimentRef(definition=load_example(ref), source=f"example {ref}")
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return _experiment_from_file(path, problems)
    fields = experiment_fields(value, "experiment", problems)
    definition = _validate(Experiment, fields, "experiment", problems)
    return None if definition is None else ExperimentRef(definition=definition, source="inline")


#: The experiment file format (what ``simulator experiments export`` writes, see
#: simulator/services/files.py): ``{format: ..., format_version: N, experiment: {...}}``.
EXPERIMENT_FORMAT = "llm-interaction-simulator/experiment"
EXPERIMENT_FORMAT_VERSION = 1
WRAPPER_KEYS = ("format", "format_version", "experiment")
# Identity and view state: never read from a file (an imported experiment is the importer's).
IDENTITY_FIELDS = {"id", "owner", "created_at", "updated_at", "version", "favourite", "parent_id"}


def experiment_fields(
    data: Mapping[str, Any], path: str, problems: list[Problem]
) -> dict[str, Any]:
    """The experiment's own fields of an experiment file or an inline definition: either the
    file format's wrapper (``format``, ``format_version``, ``experiment``) or a bare mapping.
    An unknown format or a newer format version is a problem; identity fields are dropped."""
    inner = data.get("experiment")
    if not (isinstance(inner, Mapping) and "name" not in data):
        return {k: v for k, v in data.items() if k not in IDENTITY_FIELDS}
    where = f"{path}." if path else ""
    for key in data:
        if key not in WRAPPER_KEYS:
            problems.append(
                (
                    f"{where}{key}",
                    f"unknown field; an experiment file has {', '.join(WRAPPER_KEYS)}",
                )
            )
    fmt = data.get("format", EXPERIMENT_FORMAT)
    if fmt != EXPERIMENT_FORMAT:
        problems.append(
            (
                f"{where}format",
                f"{fmt!r} is not an experiment file format; this version reads "
                f"{EXPERIMENT_FORMAT!r}",
            )
        )
    version = data.get("format_version", EXPERIMENT_FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(
            (f"{where}format_version", f"must be a whole number from 1, not {version!r}")
        )
    elif version > EXPERIMENT_FORMAT_VERSION:
        problems.append(
            (
                f"{where}format_version",
                f"{version}: written by a newer version of the simulator (this version reads "
                f"format version {EXPERIMENT_FORMAT_VERSION}); upgrade the simulator",
            )
        )
    return {k: v for k, v in inner.items() if k not in IDENTITY_FIELDS}


def experiment_from_data(data: object, source: str) -> Experiment:
    """An Experiment (a fresh id, no owner) from parsed experiment-file content; SpecError
    names each field."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: must hold an experiment (a mapping with name, roles, ...).")
    problems: list[Problem] = []
    fields = experiment_fields(data, "", problems)
    raise_problems(problems, source)
    try:
        return Experiment.model_validate(fields)
    except ValidationError as exc:
        raise_problems(problems_from(exc, "experiment"), source)
        raise  # unreachable: raise_problems raised


def read_experiment(path: Path) -> Experiment:
    """An experiment file (YAML, or JSON when the name ends in .json): see
    ``simulator.services.files`` for the format."""
    return experiment_from_data(read_data_file(Path(path)), str(path))


def load_example(name: str) -> Experiment:
    """A built-in example (``simulator.examples``) as a fresh Experiment (new id, no owner)."""
    from simulator.examples import example_path

    return read_experiment(example_path(name))


def _experiment_from_file(path: Path, problems: list[Problem]) -> ExperimentRef | None:
    try:
        data = read_data_file(path)
    except SpecError as exc:
        problems.append(("experiment.file", str(exc)))
        return None
    if not isinstance(data, Mapping):
        problems.append(("experiment.file", f"{path}: must hold an experiment (a mapping)"))
        return None
    inner: list[Problem] = []
    fields = experiment_fields(data, "", inner)
    definition = _validate(Experiment, fields, "", inner)
    problems.extend((f"experiment.file ({path}) {p}", m) for p, m in inner)
    return None if definition is None else ExperimentRef(definition=definition, source=str(path))


# --------------------------------------------------------------------------- the whole spec


@dataclass(frozen=True)
class RunSpec:
    experiment: ExperimentRef
    batch: BatchRequest
    source: str = "spec"
    overrides: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> USD per 1k tokens

    def batch_spec(self, experiment: Experiment) -> BatchSpec:
        """The BatchSpec for ``experiment``; raises SpecError naming every offending field."""
        problems: list[Problem] = []
        req = self.batch
        max_agents = _canonical_roles(experiment, req.max_agents, "batch.max_agents", problems)
        if req.models is None:
            model_sets = [
                ModelSet(default=experiment.models[0] if experiment.models else ModelRef())
            ]
        elif isinstance(req.models, str):  # "all"
            model_sets = [ModelSet(default=m) for m in experiment.models] or [ModelSet()]
        else:
            model_sets = []
            for ms, path in zip(req.models, req.model_paths, strict=True):
                per_role = _canonical_roles(experiment, ms.per_role, f"{path}.per_role", problems)
                model_sets.append(ms.model_copy(update={"per_role": per_role}))
        fields = req.scalars.model_dump()
        fields.update(self.overrides)
        try:
            spec = BatchSpec(
                experiment_id=experiment.id,
                model_sets=model_sets,
                max_agents=max_agents,
                factor_levels=req.factor_levels,
                **fields,
            )
        except ValidationError as exc:
            problems.extend(problems_from(exc, "batch"))
            raise_problems(problems, self.source)
            raise AssertionError("unreachable") from None
        problems.extend(factor_problems(experiment, spec.factor_levels))
        if not problems:
            try:
                check_grid_size(experiment, spec)
            except SpecError as exc:
                problems.append(("batch", str(exc).removeprefix("batch: ")))
        raise_problems(problems, self.source)
        return spec


def _canonical_roles(
    experiment: Experiment, mapping: Mapping[str, Any], path: str, problems: list[Problem]
) -> dict[str, Any]:
    """Keys matched to the experiment's role names (case-insensitively); unknown ones reported."""
    out: dict[str, Any] = {}
    names = [r.name for r in experiment.roles]
    for role, value in mapping.items():
        try:
            out[experiment.role(role).name] = value
        except KeyError:
            problems.append(
                (
                    f"{path}.{role}",
                    f"no role {role!r} in experiment {experiment.name!r} "
                    f"(its roles: {', '.join(names) or 'none'})",
                )
            )
    return out


def factor_problems(
    experiment: Experiment, factor_levels: list[dict[str, str]] | None
) -> list[Problem]:
    """Each listed level combination must name the experiment's factors and their levels."""
    if factor_levels is None:
        return []
    problems: list[Problem] = []
    factors = {f.name: f for f in experiment.factors}
    if not factors and factor_levels:
        return [
            ("batch.factors", f'experiment {experiment.name!r} has no study factors; use "all"')
        ]
    if not factor_levels:
        problems.append(("batch.factors", 'must list at least one combination, or be "all"'))
    for i, combo in enumerate(factor_levels):
        for name, level in combo.items():
            path = f"batch.factors.{i}.{name}"
            if name not in factors:
                problems.append(
                    (path, f"no factor {name!r} (the experiment's factors: {', '.join(factors)})")
                )
            elif level not in factors[name].levels:
                problems.append(
                    (
                        path,
                        f"{level!r} is not a level of {name!r} "
                        f"(its levels: {', '.join(factors[name].levels)})",
                    )
                )
    return problems


def parse_spec(data: object, *, base_dir: Path | None = None, source: str = "spec") -> RunSpec:
    """Check a spec's shape and values (no database needed); raises SpecError listing problems."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: (top level): must be a mapping with experiment: and batch:")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(
                (str(key), "unknown field; a spec has experiment:, batch: and optionally prices:")
            )
    experiment = _parse_experiment(data.get("experiment"), base_dir, problems)
    batch = _parse_batch(data.get("batch"), problems)
    prices = _parse_prices(data.get("prices"), problems)
    raise_problems(problems, source)
    assert experiment is not None and batch is not None
    return RunSpec(experiment=experiment, batch=batch, source=source, prices=prices)


def _price_date(value: object) -> str | None:
    """A price's date as ``YYYY-MM-DD`` (YAML reads an unquoted date as a date)."""
    import datetime as dt

    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            return None
    return None


def _parse_prices(
    value: object, problems: list[Problem], where: str = "prices"
) -> dict[str, dict[str, Any]]:
    """``{MODEL: {input_per_1k: USD, output_per_1k: USD, cached_input_per_1k: USD, as_of:
    DATE}}`` (MODEL: a model name or provider:name; the last two optional).
    ``{input: USD, output: USD, cached_input: USD}`` per million tokens (the PRICE_TABLE file's
    form) is accepted too. Returns prices per 1000 tokens (llm/prices.py reads them)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append((where, "must map model names to {input_per_1k, output_per_1k}"))
        return {}
    out: dict[str, dict[str, Any]] = {}
    for model, price in value.items():
        path = f"{where}.{model}"
        if not isinstance(price, Mapping):
            problems.append((path, "must be a mapping with input_per_1k and output_per_1k"))
            continue
        entry: dict[str, Any] = {}
        for key, amount in price.items():
            if key == "as_of":
                day = _price_date(amount)
                if day is None:
                    problems.append(
                        (f"{path}.as_of", f"must be a date (YYYY-MM-DD), not {amount!r}")
                    )
                else:
                    entry["as_of"] = day
            elif key not in (*PRICE_KEYS, *OPTIONAL_PRICE_KEYS) and key not in PER_MILLION_KEYS:
                expected = ", ".join((*PRICE_KEYS, *OPTIONAL_PRICE_KEYS))
                problems.append((f"{path}.{key}", f"unknown field; expected {expected}"))
            elif isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                problems.append((f"{path}.{key}", f"must be a price in USD (>= 0), not {amount!r}"))
            else:
                per_1k = PER_MILLION_KEYS.get(key)
                entry[per_1k or key] = float(amount) / 1000 if per_1k else float(amount)
        for key in PRICE_KEYS:
            if key not in entry and not any(problem[0].startswith(path) for problem in problems):
                problems.append((f"{path}.{key}", "is required"))
        out[str(model)] = entry
    return out


def load_price_table(path: str | Path) -> dict[str, dict[str, Any]]:
    """The PRICE_TABLE file (YAML or JSON): prices per 1000 tokens by model."""
    path = Path(path).expanduser()
    problems: list[Problem] = []
    prices = _parse_prices(read_data_file(path), problems, where="PRICE_TABLE")
    raise_problems(problems, str(path))
    return prices


def load_spec(path: str | Path) -> RunSpec:
    """Read and check a spec file (YAML, or JSON when the name ends in .json)."""
    path = Path(path)
    data = read_data_file(path)
    return parse_spec(data, base_dir=path.parent, source=str(path))


__all__ = [
    "BatchRequest",
    "ExperimentRef",
    "RunSpec",
    "factor_problems",
    "load_price_table",
    "load_spec",
    "load_yaml",
    "parse_model_ref",
    "parse_spec",
    "read_data_file",
]
