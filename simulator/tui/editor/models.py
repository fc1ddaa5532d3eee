"""Editor tab "Models": the models on offer, each with its sampling parameters.

The models of the highlighted model's server are listed on request (never pulled on open):
Ollama's installed models, or an OpenAI-compatible server's ``/models`` (with the API key when
one is set); pulling a missing Ollama model is an explicit action with a progress bar. "Test"
checks any model before a batch: the server answers, accepts the key and has the model, with the
latency, or what failed (``simulator.llm.probe``). The offline dryrun backend needs neither.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, OptionList, ProgressBar, Select, Static
from textual.widgets.option_list import Option

from simulator.domain.errors import SimulatorError
from simulator.domain.models import ModelRef, Provider, SamplingParams
from simulator.settings import Settings
from simulator.tui.context import services_of
from simulator.tui.draft import Draft, describe_validation_error
from simulator.tui.messages import DraftChanged
from simulator.tui.screens.base import ReportsWorkerErrors
from simulator.tui.widgets.item_list import ItemList, side_button
from simulator.words import plural

PARAMS: list[tuple[str, type]] = [
    ("temperature", float),
    ("top_p", float),
    ("top_k", int),
    ("num_ctx", int),
    ("max_tokens", int),
    ("seed", int),
]
DEFAULTS = SamplingParams()


def params_summary(ref: ModelRef) -> str:
    p = ref.params
    return f"T={p.temperature} top_p={p.top_p} top_k={p.top_k}"


def parse_params(values: dict[str, str]) -> SamplingParams:
    """Sampling parameters from the form; an empty field means "not sent" (provider default)."""
    data: dict[str, Any] = {}
    for name, kind in PARAMS:
        raw = values.get(name, "").strip()
        if not raw:
            data[name] = None
            continue
        try:
            data[name] = kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{name}: {raw!r} is not {what}") from None
    try:
        return SamplingParams(**data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def pool_text(ref: ModelRef) -> str:
    """A pool's endpoints as the Models tab shows them: where, which key variable, how many
    calls at once (docs/scale.md)."""
    lines = [
        f"A pool of {len(ref.endpoints)} endpoints: each call goes to the least loaded healthy "
        "one; one that fails is taken out and tried again later (docs/scale.md)."
    ]
    for e in ref.endpoints:
        limit = f"{e.concurrency} at once" if e.concurrency else "the provider's limit"
        key = f", key from {e.api_key_env}" if e.api_key_env else ""
        where = e.base_url or "default"
        name = f"{e.name}: " if e.name else ""
        lines.append(f"  • {name}{where} ({limit}{key})")
    lines.append("Edit the endpoints in the experiment file (simulator experiments export).")
    return "\n".join(lines)


class ModelList(ItemList):
    """The models on offer; besides the list's keys, ``ctrl+l`` asks the highlighted model's
    server for its models, ``ctrl+t`` tests the highlighted model and ``ctrl+o`` pulls it from
    Ollama (keys no typing produces: a pull may download GBs)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "list_models", "List models", id="models.list"),
        Binding("ctrl+t", "test", "Test", id="models.test"),
        Binding("ctrl+o", "pull", "Pull", id="models.pull"),
    ]

    def action_list_models(self) -> None:
        self.owner.action_list_models()  # type: ignore[attr-defined]

    def action_test(self) -> None:
        self.owner.action_test()  # type: ignore[attr-defined]

    def action_pull(self) -> None:
        self.owner.action_pull()  # type: ignore[attr-defined]


class ModelsPane(ReportsWorkerErrors, Horizontal):
    class Listed(Message):
        def __init__(
            self, names: list[str] | None, error: str | None, server: str = "Ollama"
        ) -> None:
            super().__init__()
            self.names = names
            self.error = error
            self.server = server  # "Ollama" or the OpenAI-compatible server's base URL

    class Tested(Message):
        def __init__(self, ref: ModelRef, result: Any) -> None:
            super().__init__()
            self.ref = ref
            self.result = result  # simulator.llm.probe.ProbeResult

    class PullProgress(Message):
        def __init__(self, status: str, completed: int | None, total: int | None) -> None:
            super().__init__()
            self.status = status
            self.completed = completed
            self.total = total

    class PullDone(Message):
        def __init__(self, model: str, error: str | None) -> None:
            super().__init__()
            self.model = model
            self.error = error

    def __init__(self, draft: Draft) -> None:
        super().__init__(id="models-pane")
        self.draft = draft
        self._pulled_note = ""  # "X is ready. ", shown with the next listing
        self.tests = 0  # connection tests finished (tests wait on it)
        self.listings = 0  # listings finished (tests wait on it)

    def compose(self) -> ComposeResult:
        with Vertical(classes="side"):
            yield ModelList(self, "model", id="model-list")
            with Horizontal(classes="side-buttons"):
                yield side_button("+ Add", "model-add")
                yield side_button("Remove", "model-remove")
                yield side_button("Test", "model-test")
        with VerticalScroll(classes="form", can_focus=False):
            with Horizontal(classes="form-row"):
                yield Label("Provider", classes="field-label")
                yield Select(
                    [
                        ("ollama", Provider.ollama.value),
                        ("openai / compatible", Provider.openai.value),
                        ("dryrun (offline, not a model)", Provider.dryrun.value),
                    ],
                    allow_blank=False,
                    id="model-provider",
                    compact=True,
                )
            with Horizontal(classes="form-row"):
                yield Label("Model", classes="field-label")
                yield Input(id="model-name", compact=True, placeholder="e.g. llama3 or gpt-4.1")
            with Horizontal(classes="form-row"):
                yield Label("On server", classes="field-label")
                yield Select([], id="model-installed", compact=True, prompt="ctrl+l lists them")
            with Horizontal(classes="form-row"):
                yield Label("Base URL", classes="field-label")
                yield Input(
                    id="model-url", compact=True, placeholder="default (OLLAMA_HOST / OpenAI)"
                )
            for row in (PARAMS[:2], PARAMS[2:4], PARAMS[4:]):  # two a row: fits 80 columns
                with Horizontal(classes="form-row"):
                    for name, _ in row:
                        yield Label(name, classes="param-label")
                        yield Input(
                            id=f"param-{name}",
                            compact=True,
                            classes="param",
                            placeholder="not sent",
                        )
            yield Static(
                f"Defaults: temperature {DEFAULTS.temperature}, top_p {DEFAULTS.top_p}, "
                f"top_k {DEFAULTS.top_k}, num_ctx {DEFAULTS.num_ctx}, max_tokens "
                f"{DEFAULTS.max_tokens}. Empty: not sent (the server's default).\n"
                "In the list: + add · del remove · ctrl+l the server's models · ctrl+t test "
                "· ctrl+o pull (Ollama)",
                classes="hint",
            )
            yield ProgressBar(id="pull-progress", show_eta=False)
            yield Static("", id="models-status", classes="issues", markup=False)

    def on_mount(self) -> None:
        self.query_one("#pull-progress", ProgressBar).display = False
        self.sync()

    # ------------------------------------------------------------------ list and form

    def selected_index(self) -> int | None:
        index = self.query_one("#model-list", OptionList).highlighted
        if index is None or not 0 <= index < len(self.draft.models):
            return None
        return index

    def sync(self, select: int | None = None) -> None:
        options = self.query_one("#model-list", OptionList)
        keep = select if select is not None else options.highlighted
        with options.prevent(OptionList.OptionHighlighted):
            options.clear_options()
            for i, ref in enumerate(self.draft.models):
                options.add_option(Option(self._label(ref), id=f"model-{i}"))
            if self.draft.models:
                options.highlighted = min(keep or 0, len(self.draft.models) - 1)
        self._load_form()

    @staticmethod
    def _label(ref: ModelRef) -> str:
        name = "dryrun" if ref.provider is Provider.dryrun else f"{ref.provider.value}:{ref.model}"
        if ref.endpoints:
            name += f"  (pool of {len(ref.endpoints)})"
        return f"{name}\n  {params_summary(ref)}"

    def _load_form(self) -> None:
        index = self.selected_index()
        self.draft.model_problem = ""  # the form shows the stored values again
        widgets: list[Any] = [
            self.query_one("#model-provider", Select),
            self.query_one("#model-name", Input),
            self.query_one("#model-url", Input),
        ] + [self.query_one(f"#param-{n}", Input) for n, _ in PARAMS]
        with self.prevent(Input.Changed, Select.Changed):
            for w in widgets:
                w.disabled = index is None
            if index is None:
                self.query_one("#models-status", Static).update(
                    "No models on offer: + (in the list) adds one (dryrun runs offline)."
                )
                return
            ref = self.draft.models[index]
            widgets[0].value = ref.provider.value
            widgets[1].value = ref.model
            widgets[2].value = ref.base_url or ""
            for name, _ in PARAMS:
                value = getattr(ref.params, name)
                self.query_one(f"#param-{name}", Input).value = "" if value is None else str(value)
        self.query_one("#model-installed", Select).disabled = ref.provider is Provider.dryrun
        self.query_one("#models-status", Static).update(self._describe(ref))

    @staticmethod
    def _describe(ref: ModelRef) -> str:
        if ref.endpoints:
            return pool_text(ref)
        if ref.provider is Provider.dryrun:
            return "dryrun answers offline with scripted text: for rehearsing, not a model."
        if ref.provider is Provider.openai:
            return (
                "OpenAI needs OPENAI_API_KEY; another server: give its base URL (…/v1). "
                "ctrl+l lists its models, ctrl+t tests the model."
            )
        return "Ollama: the model must be installed on the server (ctrl+o pulls it, ctrl+t tests)."

    @on(OptionList.OptionSelected, "#model-list")
    def _edit_selected(self) -> None:
        self.query_one("#model-provider", Select).focus()  # enter on a model: edit it

    @on(OptionList.OptionHighlighted, "#model-list")
    def _highlighted(self) -> None:
        self._load_form()

    @on(Input.Changed)
    @on(Select.Changed, "#model-provider")
    def _edited(self, event: Message) -> None:
        if isinstance(event, Input.Changed) and event.input.id not in (
            ["model-name", "model-url"] + [f"param-{n}" for n, _ in PARAMS]
        ):
            return
        index = self.selected_index()
        if index is None:
            return
        status = self.query_one("#models-status", Static)
        provider = self.query_one("#model-provider", Select).value
        try:
            params = parse_params(
                {n: self.query_one(f"#param-{n}", Input).value for n, _ in PARAMS}
            )
            old = self.draft.models[index]
            ref = ModelRef(
                provider=Provider(provider) if isinstance(provider, str) else old.provider,
                model=self.query_one("#model-name", Input).value or "",
                base_url=self.query_one("#model-url", Input).value.strip() or None,
                params=params,
                options=old.options,
                endpoints=old.endpoints,  # a pool's endpoints come from the experiment file
            )
        except ValidationError as exc:
            self._refuse(f"{describe_validation_error(exc)}")
            return
        except ValueError as exc:
            self._refuse(str(exc))
            return
        self.draft.model_problem = ""
        if ref == old:  # nothing changed (widgets also post Changed when they mount)
            status.update(self._describe(ref))  # clear a warning about a value now undone
            return
        self.draft.models[index] = ref
        self.query_one("#model-list", OptionList).replace_option_prompt_at_index(
            index, self._label(ref)
        )
        self.query_one("#model-installed", Select).disabled = ref.provider is Provider.dryrun
        status.update(self._describe(ref))
        self.post_message(DraftChanged(self))
        if isinstance(event, Select.Changed) and ref.provider is Provider.ollama:
            self.action_list_models()

    def _refuse(self, problem: str) -> None:
        """A value the model refuses (the domain's own words and bounds): shown, not applied,
        and saving waits until it is fixed."""
        index = self.selected_index()
        label = self.draft.models[index].label if index is not None else "the model"
        self.draft.model_problem = f"{label}: {problem}"
        self.query_one("#models-status", Static).update(f"⚠ {problem} (not applied)")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if not self.draft.model_problem:  # a refused value keeps the field to fix it
            self.query_one("#model-list", ItemList).focus()

    @on(Select.Changed, "#model-installed")
    def _installed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#model-name", Input).value = event.value

    # ------------------------------------------------------------------ actions

    @on(Button.Pressed, "#model-add")
    def action_add(self) -> None:
        self.draft.models.append(ModelRef())
        self.sync(len(self.draft.models) - 1)
        self.post_message(DraftChanged(self))

    @on(Button.Pressed, "#model-remove")
    def action_remove(self) -> None:
        index = self.selected_index()
        if index is None:
            return
        self.draft.models.pop(index)
        self.sync(max(index - 1, 0))
        self.post_message(DraftChanged(self))

    def _server_ref(self) -> ModelRef:
        """The highlighted model, whose server a listing asks (Ollama's default server when it
        is a dryrun model or there is none)."""
        index = self.selected_index()
        ref = self.draft.models[index] if index is not None else None
        if ref is not None and ref.provider is not Provider.dryrun:
            return ref
        return ModelRef(provider=Provider.ollama, model="any")

    def _settings(self) -> Settings:
        """The session's settings (where Ollama and the OpenAI-compatible server are)."""
        return services_of(self.app).settings

    def action_list_models(self) -> None:
        ref = self._server_ref()
        server = "Ollama" if ref.provider is Provider.ollama else "the server"
        self.query_one("#models-status", Static).update(f"Asking {server} for its models ...")
        self._list(ref)

    # the binding's old name (Ollama was the only server listed)
    action_list_ollama = action_list_models

    @work(exclusive=True, group="models-list", exit_on_error=False)
    async def _list(self, ref: ModelRef) -> None:
        from simulator.llm.probe import ProbeError, list_models, openai_base_url

        settings = self._settings()
        ollama = ref.provider is Provider.ollama
        server = "Ollama" if ollama else openai_base_url(ref, settings)
        try:
            names = await list_models(ref, settings)
        except ProbeError as exc:  # its message names the server
            self.post_message(self.Listed(None, str(exc), server))
            return
        self.post_message(self.Listed(sorted(names), None, server))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        self.listings += 1
        status = self.query_one("#models-status", Static)
        select = self.query_one("#model-installed", Select)
        if message.error is not None:
            status.update(f"⚠ {message.error}")
            return
        names = message.names or []
        with select.prevent(Select.Changed):
            select.set_options([(n, n) for n in names])
        done, self._pulled_note = self._pulled_note, ""
        if message.server == "Ollama":
            text = (
                f"Ollama has {plural(len(names), 'model')} installed; pick one above."
                if names
                else "Ollama has no models installed: type a name; ctrl+o (in the list) pulls it."
            )
        else:
            text = (
                f"{message.server} offers {plural(len(names), 'model')}; pick one above."
                if names
                else f"{message.server} lists no models: type the model's name."
            )
        status.update(done + text)

    @on(Button.Pressed, "#model-test")
    def action_test(self) -> None:
        """Test the highlighted model's connection: does its server answer, accept the key and
        have the model? (A worker: the answer may take up to the probe's timeout.)"""
        index = self.selected_index()
        if index is None:
            self.notify("Add a model first.", severity="warning")
            return
        ref = self.draft.models[index]
        self.query_one("#models-status", Static).update(f"Testing {ref.label} ...")
        self._test(ref)

    @work(exclusive=True, group="models-test", exit_on_error=False)
    async def _test(self, ref: ModelRef) -> None:
        from simulator.llm.probe import check_connection

        result = await check_connection(ref, self._settings())
        self.post_message(self.Tested(ref, result))

    @on(Tested)
    def _tested(self, message: Tested) -> None:
        self.tests += 1
        result = message.result
        text = f"✓ {message.ref.label}: {result.message}"
        if not result.ok:
            text = f"⚠ {message.ref.label}: {result.message}"
        self.query_one("#models-status", Static).update(text)
        if result.models and message.ref.provider is not Provider.dryrun:
            with self.query_one("#model-installed", Select).prevent(Select.Changed):
                self.query_one("#model-installed", Select).set_options(
                    [(n, n) for n in result.models]
                )

    def action_pull(self) -> None:
        index = self.selected_index()
        if index is None or self.draft.models[index].provider is not Provider.ollama:
            self.notify("Pulling applies to Ollama models only.", severity="warning")
            return
        ref = self.draft.models[index]
        bar = self.query_one("#pull-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#models-status", Static).update(f"Pulling {ref.model} ...")
        self._pull(ref)

    @work(exclusive=True, group="ollama-pull", exit_on_error=False)
    async def _pull(self, ref: ModelRef) -> None:
        def progress(event: Any) -> None:
            if event.kind == "pull_progress":
                self.post_message(self.PullProgress(event.reason, event.completed, event.total))

        try:
            await services_of(self.app).backends.ensure_available([ref], on_event=progress)
        except SimulatorError as exc:
            self.post_message(self.PullDone(ref.model, str(exc)))
            return
        self.post_message(self.PullDone(ref.model, None))

    @on(PullProgress)
    def _progress(self, message: PullProgress) -> None:
        bar = self.query_one("#pull-progress", ProgressBar)
        if message.total:
            bar.update(total=message.total, progress=message.completed or 0)
        self.query_one("#models-status", Static).update(f"Pulling: {message.status}")

    @on(PullDone)
    def _pulled(self, message: PullDone) -> None:
        self.query_one("#pull-progress", ProgressBar).display = False
        text = f"⚠ {message.error}" if message.error else f"{message.model} is ready on Ollama."
        self.query_one("#models-status", Static).update(text)
        if message.error is None:
            self.action_list_models()
            self._pulled_note = f"{message.model} is ready. "  # kept in the listing's status
