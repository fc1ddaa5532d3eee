"""SimulatorApp: start-up (connect, log in, or explain why not), then the experiment library.

The app never talks to MongoDB itself: the composition root (``simulator.services.root.AppRoot``,
built by the command line and handed in) says where the database is and opens it, in an async
worker on the app's own loop (an ``AsyncMongoClient`` is bound to one event loop); from then on
the app uses the services in ``app.services`` only (screens reach them with
``simulator.tui.context.services_of``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from simulator.credentials import Credentials, CredentialStore
from simulator.domain.errors import (
    AuthenticationError,
    DatabaseUnavailableError,
    SimulatorError,
)
from simulator.roles.preload import preload
from simulator.services.root import AppRoot, Login, OpenedStore, Source, Target
from simulator.settings import Settings, load_settings
from simulator.tui import ast_guard
from simulator.tui.messages import Connected, ConnectFailed
from simulator.tui.screens.dialogs import ConfirmDialog, HelpScreen, MessageDialog
from simulator.tui.screens.startup import (
    ConnectingScreen,
    DatabaseErrorScreen,
    LoginScreen,
)
from simulator.words import plural

if TYPE_CHECKING:
    from simulator.db.store import Store
    from simulator.services.container import Services

log = logging.getLogger(__name__)


def quit_title(*, unsaved: bool, running: bool) -> str:
    """The quit dialog's title, naming what quitting would cost."""
    if unsaved and running:
        return "Quit without saving, and stop the batches?"
    if running:
        return "Stop the running batches and quit?"
    return "Quit without saving?"


class QuitDialog(ConfirmDialog):
    """The question ctrl+q asks (a second ctrl+q answers it: quit)."""


class SimulatorApp(App[None]):
    """The TUI, on the composition root ``root`` (by default: the environment's settings).

    Tests pass ``store`` to skip connecting, and ``user`` to act as that user; both go through
    the root like everything else (``AppRoot.services``)."""

    TITLE = "LLM Interaction Simulator"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        # F1 as well: "?" types into a focused text field, F1 works everywhere.
        Binding("f1,question_mark", "help", "Help", id="app.help", key_display="F1"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        root: AppRoot | None = None,
        store: Store | None = None,
        user: str | None = None,
        reload_settings: Callable[[], Settings] | None = None,
        credential_store: CredentialStore | None = None,
        offer_example: bool = True,
    ) -> None:
        # Before any thread of the app starts: heavy modules once, in this thread, and no two
        # threads parsing at once (CPython 3.11's AST race).
        ast_guard.install()
        preload()
        super().__init__()
        if root is None:
            root = AppRoot(
                settings if settings is not None else load_settings(),
                credentials=credential_store,
                user=user,
            )
        self.root = root
        self._reload_settings = reload_settings
        self._given_store = store
        self._opened: OpenedStore | None = None
        self.user: str | None = root.user
        self.services: Services | None = None
        self.target = "the given store" if store is not None else ""
        self._target: Target | None = None  # where the last connection went
        self.offer_example = offer_example
        self._login_cluster = self.settings.db_cluster_url or ""
        self._login_user = self.settings.db_user or ""

    @property
    def settings(self) -> Settings:
        return self.root.settings

    @property
    def credential_store(self) -> CredentialStore:
        return self.root.credentials

    # ------------------------------------------------------------------ start-up

    def on_mount(self) -> None:
        if self._given_store is not None:
            self._show(ConnectingScreen(self.target))
            self.adopt_store(self._given_store)
        else:
            self.start_connecting()

    def _show(self, screen: Screen[Any]) -> None:
        """Replace the top-level screen (start-up screens follow each other)."""
        if len(self.screen_stack) <= 1:
            self.push_screen(screen)
        else:
            self.switch_screen(screen)

    def start_connecting(self, login: Login | None = None) -> None:
        if login is None:
            self.root.remembered()
            if self.credential_store.notice:
                self.notify(self.credential_store.notice, title="Login", timeout=15)
            if self.root.needs_password():
                remembered = self.root.remembered()
                if remembered is not None:  # remembered without its password: no keyring
                    self._login_cluster = self._login_cluster or remembered.cluster_url
                    self._login_user = self._login_user or remembered.user
                self._ask_login()
                return
        try:
            target = self.root.target(login)
        except SimulatorError as exc:
            self._show(DatabaseErrorScreen(exc.title, str(exc), "MongoDB"))
            return
        self.target = target.describe()
        self._target = target
        if not isinstance(self.screen, LoginScreen):
            self._show(ConnectingScreen(self.target))
        self.connect(target, login)

    def _ask_login(self, error: str | None = None) -> None:
        if isinstance(self.screen, LoginScreen):
            self.screen.show_error(error or "")
            return
        self._show(LoginScreen(self._login_cluster, self._login_user, error))

    def log_in(self, details: Login) -> None:
        """The login screen's submit: try these credentials (the screen stays up meanwhile)."""
        self._login_cluster, self._login_user = details.cluster_url, details.user
        self.start_connecting(details)

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def connect(self, target: Target, login: Login | None) -> None:
        try:
            opened = await self.root.open(target)
        except SimulatorError as exc:
            self.post_message(ConnectFailed(exc, login))
            return
        except Exception as exc:  # a driver/server failure our store did not translate
            log.warning("connecting failed unexpectedly", exc_info=True)
            self.post_message(
                ConnectFailed(
                    DatabaseUnavailableError(
                        f"Could not open the database at {self.target} "
                        f"({type(exc).__name__}). Check the server and your settings."
                    ),
                    login,
                )
            )
            return
        try:
            services = await self.root.services(opened.store)
        except SimulatorError as exc:
            await opened.close()
            self.post_message(ConnectFailed(exc, login))
            return
        self.post_message(Connected(services, opened, login))

    @work(exclusive=True, group="connect", exit_on_error=False)
    async def adopt_store(self, store: Store) -> None:
        self.post_message(Connected(await self.root.services(store)))

    def on_connected(self, message: Connected) -> None:
        self._opened = message.opened
        self.services = message.services
        self.user = message.services.user
        self.sub_title = f"{self.user} · {self.target.split(' at /')[0]}"
        log.info("connected to %s as %s", self.target, self.user)
        from simulator.tui.screens.library import LibraryScreen

        self._show(LibraryScreen())
        self.call_after_refresh(freeze_startup_heap)
        if message.login is not None:
            self._offer_remember(message.login)

    def on_connect_failed(self, message: ConnectFailed) -> None:
        exc = message.error
        log.warning("could not open the database: %s: %s", exc.title, exc)
        can_log_in = message.login is not None or (
            self.settings.mongodb_uri is None and bool(self._login_cluster)
        )
        if isinstance(exc, AuthenticationError) and can_log_in:
            self._ask_login(
                f"User name or password rejected by {self.target.removeprefix('MongoDB at ')}. "
                "Check them and try again."
            )
        elif isinstance(exc, DatabaseUnavailableError) and message.login is not None:
            self._ask_login(f"{exc} Check the server address and try again.")
        else:
            hint = None
            if self._target is not None and self._target.source is Source.remembered:
                hint = (
                    "To fix it: start the server, or run 'simulator logout' in a terminal to "
                    "forget the remembered login (the embedded local server is then used), or "
                    "'simulator login' again; then retry."
                )
            self._show(DatabaseErrorScreen(exc.title, str(exc), self.target, hint))

    def action_retry_connect(self) -> None:
        if self._reload_settings is not None:
            try:
                self.root.use_settings(self._reload_settings())
            except Exception as exc:  # a broken .env: say so, keep the old settings
                self.notify(str(exc), title="Could not re-read settings", severity="error")
        self._login_cluster = self.settings.db_cluster_url or self._login_cluster
        self._login_user = self.settings.db_user or self._login_user
        self.start_connecting()

    def _offer_remember(self, login: Login) -> None:
        keyring = self.credential_store.uses_keyring

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.credential_store.save(
                    Credentials(login.cluster_url, login.user, login.password)
                )
            except OSError as exc:
                self.notify(f"Could not remember the login: {exc}", severity="error")
                return
            if keyring:
                self.notify("You will be logged in automatically. 'simulator logout' forgets it.")
            else:
                self.notify("Server and user name remembered; the password is asked each time.")

        if keyring:
            question = (
                f"Log in automatically next time as {login.user}? The password is kept in "
                "the system keyring, never in .env."
            )
        else:
            question = (
                f"Remember the server and the user name {login.user} for next time? There is "
                "no keyring on this computer, so the password is not kept: it is asked each "
                "time (or set DB_PASSWORD in your environment or .env)."
            )
        self.push_screen(ConfirmDialog("Remember me?", question), callback=answered)

    async def on_unmount(self) -> None:
        # Batches first: each stores its interruption through its own client and ends; only
        # then do the app's clients (and the embedded server they may share) close.
        registry = getattr(self, "_batch_runs", None)
        if registry is not None:
            try:
                await registry.shutdown("the app was closed")
            except Exception:
                log.exception("stopping the batches failed")
        services, self.services = self.services, None
        if services is not None:
            try:
                await services.aclose()
            except Exception:
                log.exception("closing the model clients failed")
        opened, self._opened = self._opened, None
        if opened is not None:
            try:
                await opened.close()
            except Exception:
                log.exception("closing the database failed")

    # ------------------------------------------------------------------ help, palette, errors

    def action_help(self) -> None:
        screen = self.screen
        rows: list[tuple[tuple[int, int], str, str]] = []
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.description in seen:
                continue
            seen.add(binding.description)
            key_display = self.get_key_display(binding) or key
            rows.append((self._help_rank(active.node, binding), key_display, binding.description))
        rows.sort(key=lambda row: row[0])
        title = getattr(screen, "HELP_TITLE", type(screen).__name__)
        self.push_screen(HelpScreen(title, [(key, text) for _, key, text in rows]))

    @staticmethod
    def _declared_index(node: Any, binding: Binding) -> int | None:
        """Where our own classes declare ``binding`` for ``node`` (None: one of Textual's)."""
        ours = [
            b.action
            for cls in type(node).__mro__
            if cls.__module__.startswith("simulator.")
            for b in cls.__dict__.get("BINDINGS", [])
            if isinstance(b, Binding)
        ]
        return ours.index(binding.action) if binding.action in ours else None

    def _help_rank(self, node: Any, binding: Binding) -> tuple[int, int]:
        """Help order: the screen's own keys, then its panes', the app's, then Textual's (focus,
        cursor and text keys); each group in the order our classes declare them."""
        index = self._declared_index(node, binding)
        if index is None:
            return 3, 0
        return (0 if node is self.screen else 2 if node is self else 1), index

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's own commands, then the actions of the current screen and its focused pane."""
        seen: set[str] = set()
        for command in super().get_system_commands(screen):
            seen.add(command.title)
            yield command
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.description in seen or not active.enabled:
                continue
            if self._declared_index(active.node, binding) is None:
                continue  # Textual's cursor and text keys: in the help (F1), not the palette
            seen.add(binding.description)
            key = f"key: {self.get_key_display(binding)}"
            yield SystemCommand(
                binding.description,
                f"{binding.tooltip} · {key}" if binding.tooltip else key,
                partial(self._run_bound_action, binding.action, active.node),
            )

    def _interrupt_batches(self, reason: str) -> None:
        """Batches running here stop as ``interrupted`` with ``reason``, each stored by its own
        thread's runner while the app closes (``on_unmount`` waits for them); everything stored
        is kept and they resume later."""
        registry = getattr(self, "_batch_runs", None)
        if registry is not None:
            registry.interrupt(reason)
        if self.services is not None:  # anything run on the app's own loop (annotations' runs)
            self.services.batches.interrupt(reason)

    def on_batch_report(self, message: Any) -> None:
        """What a batch's thread reports (``simulator.tui.runs.BatchReport``): the registry
        applies it on this loop."""
        from simulator.tui.runs import runs_of

        if self.services is not None:
            runs_of(self).receive(message)

    async def action_quit(self) -> None:
        """Quit; first ask when an editor below holds unsaved changes or batches are running in
        this app (ctrl+q works anywhere; twice quits)."""
        from simulator.tui.screens.editor import EditorScreen

        if isinstance(self.screen, QuitDialog):
            self._interrupt_batches("the app was closed (ctrl+q twice)")
            self.exit()  # ctrl+q twice
            return
        unsaved = [s for s in self.screen_stack if isinstance(s, EditorScreen) and s.dirty]
        registry = getattr(self, "_batch_runs", None)
        running = registry.running_ids if registry is not None else []
        if not unsaved and not running:
            self.exit()
            return
        reasons = []
        if unsaved:
            reasons.append(
                f"'{unsaved[-1].draft.name}' has unsaved changes (Stay, then ctrl+s saves)."
            )
        if running:
            reasons.append(
                f"{plural(len(running), 'batch')} {'is' if len(running) == 1 else 'are'} running "
                f"in this app: quitting stops {'it' if len(running) == 1 else 'them'}, keeping "
                "every stored message; resume later from the run monitor (r) or with "
                "'simulator resume'."
            )

        def answered(quit_anyway: bool | None) -> None:
            if quit_anyway:
                self._interrupt_batches("the app was closed (ctrl+q)")
                self.exit()

        self.push_screen(
            QuitDialog(
                quit_title(unsaved=bool(unsaved), running=bool(running)),
                " ".join(reasons) + " Quit anyway?",
                yes="Quit",
                no="Stay",
                danger=True,
            ),
            callback=answered,
        )

    async def _run_bound_action(self, action: str, node: Any) -> None:
        await self.run_action(action, node)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        # The app's own workers; screens forward theirs (screens.base.ReportsWorkerErrors).
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)

    def show_error(self, exc: BaseException) -> None:
        """One place that turns a failure into a toast (our errors) or a details modal."""
        if isinstance(exc, SimulatorError):
            log.warning("%s: %s", exc.title, exc)
            self.notify(str(exc), title=exc.title, severity="error", timeout=10)
            return
        log.error("unexpected error", exc_info=exc)
        self.push_screen(
            MessageDialog(
                "Something went wrong",
                f"{type(exc).__name__}: {exc}\n\nThe app keeps running; your data is safe. "
                "Details are in the log file.",
            )
        )


def freeze_startup_heap() -> None:
    """Move what start-up made (modules, Textual's widgets and styles, the first screen) out of
    the cyclic garbage collector's sight, once: the collector's full passes walked all of it,
    holding the UI's loop 50-130 ms each while a monitor listed 2,000 conversations (about
    20-40 ms after this; benchmarks/ui_responsiveness.py). Objects frozen are still freed by
    reference counting; only a cycle among them would stay."""
    import gc

    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()
