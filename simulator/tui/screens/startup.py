"""Start-up screens: connecting, database unreachable (with retry), login."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, LoadingIndicator, Static

from simulator.services.root import Login
from simulator.tui.context import simulator_app


class ConnectingScreen(Screen[None]):
    """Shown while the store opens in a worker; says where it connects."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "app.quit", "Quit", id="connecting.quit")
    ]

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        # No Header here: this screen may live for a few milliseconds only.
        with Vertical(id="connecting", classes="centered-box"):
            yield Static("LLM Interaction Simulator", classes="box-title")
            yield Static(f"Connecting to {self.target} ...", id="connecting-target", markup=False)
            yield LoadingIndicator()


class DatabaseErrorScreen(Screen[None]):
    """The database could not be opened: what is wrong, what to fix, and a retry."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "app.retry_connect", "Retry", id="dberror.retry"),
        # show=False: the footer shows the app's ctrl+q Quit already.
        Binding("q", "app.quit", "Quit", id="dberror.quit", show=False),
    ]

    HINT = (
        "To fix it: start the server or correct MONGODB_URI (or DB_USER, DB_PASSWORD, "
        "DB_CLUSTER_URL) in your environment or .env, then retry. With none of them "
        "set, the simulator uses its embedded local server."
    )

    def __init__(self, title: str, message: str, target: str, hint: str | None = None) -> None:
        super().__init__()
        self.error_title = title
        self.error_message = message
        self.target = target
        self.hint = hint or self.HINT

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Vertical(id="db-error", classes="centered-box"):
            yield Static(self.error_title, id="db-error-title", classes="error-title")
            yield Static(self.error_message, id="db-error-message", markup=False)
            yield Static(self.hint, id="db-error-hint", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Retry (r)", id="retry", variant="primary")
                yield Button("Quit (q)", id="quit")
        yield Footer()

    @on(Button.Pressed, "#retry")
    async def _retry(self) -> None:
        await self.app.run_action("retry_connect")

    @on(Button.Pressed, "#quit")
    def _quit(self) -> None:
        self.app.exit()


class LoginScreen(Screen[None]):
    """Asks for the MongoDB user and password (masked). It stays up while the app tries them
    (``app.log_in``) and shows why a try failed, so the user can try again at once."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.quit", "Quit", id="login.quit", show=False),  # ^q in the footer
    ]

    def __init__(self, cluster_url: str, user: str, error: str | None = None) -> None:
        super().__init__()
        self.cluster_url = cluster_url
        self.user = user
        self.error = error

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Vertical(id="login", classes="centered-box"):
            yield Static("Log in to MongoDB", classes="box-title")
            yield Label("Server (DB_CLUSTER_URL)")
            yield Input(self.cluster_url, id="login-cluster", compact=True)
            yield Label("User")
            yield Input(self.user, id="login-user", compact=True)
            yield Label("Password")
            yield Input(password=True, id="login-password", compact=True)
            yield Static(
                self.error or "", id="login-error", classes="error-text status-line", markup=False
            )
            with Horizontal(classes="buttons"):
                yield Button("Log in", id="login-submit", variant="primary")
                yield Button("Quit", id="login-cancel")
        yield Footer()

    def on_mount(self) -> None:
        target = "#login-password" if self.user else "#login-user"
        self.query_one(target, Input).focus()

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        if event.input.id == "login-password":
            self._submit()
        else:
            self.focus_next()

    @on(Button.Pressed, "#login-submit")
    def _submit(self) -> None:
        cluster = self.query_one("#login-cluster", Input).value.strip()
        user = self.query_one("#login-user", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if not cluster or not user or not password:
            self.show_error("Server, user and password are all needed.")
            return
        self.show_status(f"Connecting to {cluster} as {user} ...")
        simulator_app(self.app).log_in(
            Login(cluster_url=cluster, user=user, password=SecretStr(password))
        )

    def show_error(self, text: str) -> None:
        error = self.query_one("#login-error", Static)
        error.update(text)
        error.add_class("error-text")
        self.query_one("#login-password", Input).focus()

    def show_status(self, text: str) -> None:
        error = self.query_one("#login-error", Static)
        error.update(text)
        error.remove_class("error-text")

    @on(Button.Pressed, "#login-cancel")
    def _cancel(self) -> None:
        self.app.exit()
