"""What the command line and the TUI share: choosing an annotator from words, choosing the
conversations, planning and running the job.

``build_annotator(AnnotatorSpec(...))`` turns ``judge`` (with a rubric and a model; the rubric
is a file or, by name, a rubric the selected experiment carries: ``resolve_rubric``),
``moderation`` or ``python:<scorer>`` into an annotator; ``AnnotationService.prepare`` selects the
conversations with the export filters (finished ones only, unless a status is asked for) and
plans the job; ``run`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.annotations.base import AnnotationError, Annotator, Prices
from simulator.annotations.runner import DEFAULT_CONCURRENCY, AnnotationRunner, JobReport, Plan
from simulator.domain import Conversation, Experiment, Message, ModelRef, Provider, Status
from simulator.domain.annotations import Annotation
from simulator.domain.errors import ConfigurationError, NotFoundError
from simulator.domain.rubric import Rubric

ANNOTATOR_CHOICES = ("judge", "moderation", "python:<scorer>")


@dataclass(frozen=True)
class AnnotatorSpec:
    """An annotator as a person names it."""

    annotator: str  # judge | moderation | python:<dotted path or entry point>
    rubric: Path | str | Rubric | None = None  # a file, a name of an experiment's rubric, a rubric
    model: str | None = None
    base_url: str | None = None
    kinds: tuple[str, ...] | None = None  # which messages per-message annotators read
    batch_size: int | None = None


def parse_model(text: str, base_url: str | None = None, *, what: str = "--model") -> ModelRef:
    """``dryrun``, ``dryrun:judge``, ``openai:gpt-4o-mini``, ``ollama:llama3.1:8b``; a bad one is
    a ConfigurationError naming the option."""
    from simulator.engine.spec import parse_model_ref

    problems: list[tuple[str, str]] = []
    ref = parse_model_ref(text, what, problems)
    if ref is None:
        raise ConfigurationError(f"{what}: {problems[0][1]}")
    if base_url:
        if ref.provider is Provider.dryrun:
            raise ConfigurationError("--base-url: a dryrun model has no server")
        ref = ref.model_copy(update={"base_url": base_url.rstrip("/")})
    return ref


def rubric_is_file(ref: Path | str | Rubric) -> bool:
    """Whether ``ref`` names an existing path (which wins over a rubric of the same name)."""
    return isinstance(ref, str | Path) and Path(ref).expanduser().exists()


def resolve_rubric(ref: Path | str | Rubric, experiments: Mapping[str, Experiment]) -> Rubric:
    """The rubric ``ref`` names: an existing file (a path wins), else the rubric of that name
    (case-insensitive) carried by the selected experiment (by every selected experiment, with
    the same content, when the conversations come from several). RubricError names what is
    wrong and lists the experiment's rubrics."""
    from simulator.annotations.rubric import load_rubric
    from simulator.domain.rubric import RubricError, parse_rubric

    if isinstance(ref, Rubric):
        return ref
    if rubric_is_file(ref) or not experiments:
        return load_rubric(ref)
    wanted = str(ref).strip()
    found: list[Rubric] = []
    for exp in experiments.values():
        for raw in exp.rubrics:
            if str(raw.get("name") or "").strip().casefold() == wanted.casefold():
                found.append(
                    parse_rubric(raw, source=f"rubric {wanted!r} of experiment {exp.name!r}")
                )
    if len(experiments) == 1:
        (exp,) = experiments.values()
        if found:
            return found[0]
        names = exp.rubric_names()
        listed = (
            f"its rubrics: {', '.join(names)}"
            if names
            else "it carries no rubric (docs/annotations.md#rubrics)"
        )
        raise RubricError(
            f"rubric {wanted!r}: no such rubric file, and experiment {exp.name!r} has no rubric "
            f"of that name ({listed})"
        )
    if len(found) == len(experiments) and len({r.digest for r in found}) == 1:
        return found[0]
    selected = ", ".join(sorted(repr(e.name) for e in experiments.values()))
    raise RubricError(
        f"rubric {wanted!r}: no such rubric file; a rubric is found by name in the selected "
        f"experiment, but the conversations come from {len(experiments)} experiments "
        f"({selected}) that do not all carry the same rubric {wanted!r}: select one experiment "
        "(--experiment) or give a rubric file"
    )


def _judge_model(spec: AnnotatorSpec) -> ModelRef:
    if spec.rubric is None:
        raise ConfigurationError(
            "judge: give the rubric with --rubric FILE or NAME (a rubric file such as "
            "simulator/examples/rubrics/persuasion.yaml, the prison study's persuasion coding, "
            "or the name of a rubric the experiment carries)"
        )
    if not spec.model:
        raise ConfigurationError(
            "judge: choose the judge's model with --model (e.g. openai:gpt-4o-mini, "
            "ollama:llama3.1:8b, or dryrun:judge to rehearse offline)"
        )
    return parse_model(spec.model, spec.base_url)


def check_spec(spec: AnnotatorSpec, *, backends: Any, prices: Prices | None = None) -> None:
    """Everything about ``spec`` that can be checked before the database is opened: a judge's
    rubric given by name is looked up in the selected experiment later (``prepare``)."""
    named = isinstance(spec.rubric, str | Path) and not rubric_is_file(spec.rubric)
    if spec.annotator.strip() == "judge" and named:
        _judge_model(spec)
        return
    build_annotator(spec, backends=backends, prices=prices)


def build_annotator(
    spec: AnnotatorSpec,
    *,
    backends: Any,
    prices: Prices | None = None,
    experiment_names: Mapping[str, str] | None = None,
    experiments: Mapping[str, Experiment] | None = None,
) -> Annotator:
    """The annotator ``spec`` names; AnnotationError / ConfigurationError when it cannot be.
    ``experiments``: those of the selected conversations, where a judge's rubric given by name
    is found."""
    name = spec.annotator.strip()
    kinds = tuple(spec.kinds) if spec.kinds else None
    if name == "judge":
        from simulator.annotations.judge import JudgeAnnotator

        judge_model = _judge_model(spec)
        assert spec.rubric is not None  # _judge_model refuses a judge without one
        rubric = resolve_rubric(spec.rubric, experiments or {})
        if experiment_names is None and experiments is not None:
            experiment_names = {k: e.name for k, e in experiments.items()}
        return JudgeAnnotator(
            rubric,
            judge_model,
            backends,
            prices=prices,
            experiment_names=experiment_names,
            kinds=kinds,
        )
    if spec.rubric is not None:
        raise ConfigurationError(f"--rubric belongs to the judge, not to {name}")
    if name == "moderation":
        from simulator.annotations.moderation import (
            DEFAULT_BATCH,
            DEFAULT_MODEL,
            ModerationAnnotator,
        )

        model = (spec.model or DEFAULT_MODEL).strip()
        if ":" in model:
            provider, _, rest = model.partition(":")
            if provider != "openai" or not rest.strip():
                raise ConfigurationError(
                    f"--model {model!r}: the moderation scorer takes a moderation model name "
                    "(default omni-moderation-latest), optionally as openai:NAME"
                )
            model = rest.strip()
        return ModerationAnnotator(
            backends,
            model=model,
            base_url=spec.base_url.rstrip("/") if spec.base_url else None,
            kinds=kinds or ("utterance",),
            batch_size=spec.batch_size or DEFAULT_BATCH,
        )
    if name.startswith("python:"):
        from simulator.annotations.scorers import PythonScorer

        if spec.model or spec.base_url:
            raise ConfigurationError("--model and --base-url belong to the judge and moderation")
        scorer = PythonScorer(name.removeprefix("python:"), kinds=kinds or ("utterance",))
        if spec.batch_size:
            scorer.batch_size = spec.batch_size
        return scorer
    raise ConfigurationError(
        f"unknown annotator {name!r}: choose judge (with --rubric), moderation, or "
        "python:package.module:function (or python:<entry point name>)"
    )


@dataclass
class Prepared:
    """A planned job: the annotator, the conversations it reads, and what is missing."""

    annotator: Annotator
    plan: Plan
    experiments: dict[str, Experiment]
    skipped: int  # selected conversations left out because they are not finished

    @property
    def conversations(self) -> list[Conversation]:
        return self.plan.conversations


async def select_finished(
    store: Any, flt: Any
) -> tuple[list[Conversation], dict[str, Experiment], int]:
    """The conversations ``flt`` selects; without a status filter, only finished (done) ones,
    with how many others were left out. NotFoundError when nothing matches."""
    from simulator.analysis.loading import select_conversations

    convs, experiments = await select_conversations(store, flt)
    skipped = 0
    if getattr(flt, "status", None) is None:
        done = [c for c in convs if c.status is Status.done]
        skipped = len(convs) - len(done)
        convs = done
    if not convs:
        more = f" ({skipped} not finished: add --status to include them)" if skipped else ""
        raise NotFoundError(f"no finished conversation matches these filters{more}")
    return convs, experiments, skipped


class AnnotationService:
    """Annotation jobs and reads for one store (the TUI's and the commands' entry point)."""

    def __init__(
        self,
        store: Any,
        backends: Any = None,
        bus: Any = None,
        *,
        prices: Prices | None = None,
    ) -> None:
        self.store = store
        self.backends = backends
        self.bus = bus
        self.prices = prices

    async def conversation_annotations(
        self, conversation: Conversation, messages: list[Message]
    ) -> list[Annotation]:
        from simulator.annotations.tables import conversation_annotations

        return await conversation_annotations(self.store, conversation, messages)

    async def prepare(self, spec: AnnotatorSpec | Annotator, flt: Any) -> Prepared:
        convs, experiments, skipped = await select_finished(self.store, flt)
        if isinstance(spec, AnnotatorSpec):
            annotator = build_annotator(
                spec, backends=self.backends, prices=self.prices, experiments=experiments
            )
        else:
            annotator = spec
        rubric = getattr(annotator, "rubric", None)
        if rubric is not None:
            for exp in experiments.values():
                rubric.check_placeholders([f.name for f in exp.factors], exp.name)
        runner = AnnotationRunner(self.store, self.backends, self.bus)
        plan = await runner.plan(annotator, convs)
        if not plan.items:
            raise AnnotationError(
                f"{annotator.name} finds nothing to annotate in the {len(convs)} selected "
                "conversation(s) (no message of the chosen kinds, or no such agent)."
            )
        return Prepared(annotator, plan, experiments, skipped)

    async def run(
        self,
        prepared: Prepared,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        job_id: str | None = None,
    ) -> JobReport:
        runner = AnnotationRunner(self.store, self.backends, self.bus, concurrency=concurrency)
        return await runner.run(
            prepared.annotator, prepared.conversations, plan=prepared.plan, job_id=job_id
        )


def describe_report(report: JobReport) -> str:
    """One line saying how a job ended (the CLI prints it, the TUI shows it)."""
    d = report.decisions
    parts = [
        f"{report.done} of {report.todo} item(s) annotated",
        f"{report.written} annotation(s) stored",
    ]
    if report.written:
        parts.append(
            f"{d.get('answer', 0)} answer(s), {d.get('reasked', 0)} after a re-ask, "
            f"{d.get('fallback', 0)} fallback(s)"
        )
    if report.tokens.total_tokens:  # scorers and moderation use no tokens
        parts.append(f"{report.tokens.total_tokens:,} tokens")
        if report.cost_usd is None:
            parts.append("cost unknown (a model has no price in PRICE_TABLE)")
        else:
            parts.append(f"cost ${report.cost_usd:,.4f}")
    if report.failed:
        parts.append(f"{report.failed} failed")
    return "; ".join(parts)


__all__ = [
    "ANNOTATOR_CHOICES",
    "AnnotationService",
    "AnnotatorSpec",
    "Prepared",
    "build_annotator",
    "check_spec",
    "describe_report",
    "parse_model",
    "resolve_rubric",
    "rubric_is_file",
    "select_finished",
]
