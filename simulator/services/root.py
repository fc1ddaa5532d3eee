"""The composition root: the one place that builds what the app and every command run on.

::

    settings (the environment and .env, read once: ``simulator.settings.load_settings``)
      -> where the database is (``Target``): MONGODB_URI, else DB_CLUSTER_URL with DB_USER and
         DB_PASSWORD, else the login remembered by ``simulator login``, else the embedded local
         server; a login typed in the TUI's login screen comes before all but MONGODB_URI
      -> the store (``simulator.db.mongo.open_store``): a server that cannot be opened is one
         error naming it and what to do (``Target.advice``), never a silent fall-back to the
         embedded server
      -> who you are (``identity.current_user``; tests inject a user here)
      -> the services (``container.Services``: experiments, conversations, the batch runner, the
         model backends and the event bus)

Building a root also hands the registry of experiment kinds to the engine
(``scenarios.registry.install``).

``AppRoot`` is used by the TUI (``simulator.tui.launch`` builds one and hands it to
``SimulatorApp``), by every command that reads or writes the database
(``simulator.commands.common.open_session``, which is ``AppRoot.session``) and by the tests.
Nothing else opens the database or decides who the user is.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from pydantic import SecretStr

from simulator.credentials import Credentials, CredentialStore
from simulator.domain.errors import AuthenticationError
from simulator.settings import Settings, load_settings, redact_uri

if TYPE_CHECKING:
    from simulator.db.embedded import EmbeddedServer
    from simulator.db.mongo import MongoStore
    from simulator.db.store import Store
    from simulator.engine.events import EventBus
    from simulator.llm.registry import Backends
    from simulator.services.container import Services

#: Asks for the password of ``user`` at ``server`` (masked); returns it, or raises
#: ``AuthenticationError`` when there is nobody to ask or nothing was typed.
PasswordPrompt = Callable[[str, str], SecretStr]


@dataclass(frozen=True)
class Login:
    """A server, user name and password typed in the TUI's login screen. The password is a
    ``SecretStr``: its repr never shows it."""

    cluster_url: str
    user: str
    password: SecretStr


class Source(Enum):
    """Where the database's address came from; it decides what an error tells the user to do."""

    uri = "MONGODB_URI"
    cluster = "DB_CLUSTER_URL"
    remembered = "the login remembered by 'simulator login'"
    login = "the login typed"
    embedded = "the embedded local server"


@dataclass(frozen=True)
class Target:
    """The database a session opens, and why that one."""

    source: Source
    settings: Settings  # the settings to connect with (a typed login or password applied)
    uri: SecretStr | None  # None: the embedded local server
    remembered: Credentials | None = None  # read for the connection (its password, its user)

    @property
    def host(self) -> str:
        """``host:port`` of the server (never credentials), or the embedded server's folder."""
        if self.uri is None:
            from simulator.db.embedded import default_data_dir

            return str(default_data_dir(self.settings))
        rest = redact_uri(self.uri.get_secret_value()).split("://", 1)[-1].rsplit("@", 1)[-1]
        return rest.split("/", 1)[0].split("?", 1)[0] or "?"

    def describe(self) -> str:
        """Where the app connects, in words: ``MongoDB at host`` or the embedded server's
        folder."""
        if self.uri is None:
            return f"embedded local server at {self.host}"
        return f"MongoDB at {self.host}"

    @property
    def advice(self) -> str | None:
        """What to do when this server cannot be reached or refuses the login (None: the
        store's own advice about MONGODB_URI and DB_CLUSTER_URL)."""
        if self.source is Source.remembered:
            user = self.remembered.user if self.remembered is not None else "?"
            return (
                f"The server and the user name ({user}) come from the login remembered by "
                "'simulator login'. Run 'simulator logout' to forget it (the embedded local "
                "server is then used), or 'simulator login' again once the server answers, "
                "with the right address or password. Nothing was done."
            )
        if self.source is Source.login:
            return "Check the server address, the user name and the password."
        return None


def terminal_password(user: str, server: str) -> SecretStr:
    """The password typed at the terminal (masked); without a terminal, AuthenticationError."""
    if not sys.stdin.isatty():
        raise AuthenticationError(
            f"No password is known for {user} at {server}: nothing keeps it (a password is "
            "only kept in an operating-system keyring). Run the command at a terminal to type "
            "it, set DB_PASSWORD in your environment or .env, or run 'simulator login'.",
            title="Login needed",
        )
    password = getpass.getpass(f"Password for {user} at {server}: ")
    if not password:
        raise AuthenticationError("No password typed; nothing was done.", title="Login needed")
    return SecretStr(password)


@dataclass
class OpenedStore:
    """An open database: the store, and the embedded server when that is what it runs on."""

    store: MongoStore
    server: EmbeddedServer | None
    target: Target

    async def close(self) -> None:
        """Close the client, then leave the embedded server (stopped if no one else uses it)."""
        from simulator.db.mongo import close_store

        await close_store(self.store, self.server)


class AppRoot:
    """Builds, once per session, the settings, the store and the services (module docstring).

    ``user`` replaces who the store says you are: tests that act as several users give it here
    (and only tests: the app and the commands always ask the store). ``backends`` and ``bus``
    are built on first use, once, unless given (tests with a counting bus, say).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: CredentialStore | None = None,
        user: str | None = None,
        backends: Backends | None = None,
        bus: EventBus | None = None,
    ) -> None:
        from simulator.scenarios.registry import install

        install()  # the experiment kinds, handed to the engine (once per process in effect)
        self.settings = settings
        self.credentials = credentials if credentials is not None else CredentialStore()
        self.user = user
        self._backends = backends
        self._bus = bus
        self._remembered: Credentials | None = None
        self._read = False  # the remembered login was read

    @classmethod
    def from_environment(
        cls, *, credentials: CredentialStore | None = None, user: str | None = None
    ) -> AppRoot:
        """A root on the settings of the environment and ``.env`` (a bad value raises
        ``ConfigurationError`` naming the variable)."""
        return cls(load_settings(), credentials=credentials, user=user)

    @property
    def bus(self) -> EventBus:
        """The event bus of the session: runs, model retries and annotations report on it."""
        if self._bus is None:
            from simulator.engine.events import EventBus

            self._bus = EventBus()
        return self._bus

    @property
    def backends(self) -> Backends:
        """The model backends of the session (no client exists before the first call)."""
        if self._backends is None:
            from simulator.llm.registry import Backends

            self._backends = Backends(self.settings, on_event=self.bus.publish)
        return self._backends

    def use_settings(self, settings: Settings) -> None:
        """Use these settings from now on (the TUI's retry reads the environment again)."""
        self.settings = settings
        self._read = False

    # ------------------------------------------------------------------ where the database is

    def remembered(self) -> Credentials | None:
        """The login ``simulator login`` remembered (read once), unless ``MONGODB_URI`` decides
        the connection. ``credentials.notice`` then says anything the user should be told."""
        if self.settings.mongodb_uri is not None:
            return None
        if not self._read:
            self._remembered, self._read = self.credentials.load(), True
        return self._remembered

    def needs_password(self) -> bool:
        """A server and user are known but no password: one must be typed."""
        return self.settings.needs_password(self.remembered())

    def password_for(self) -> tuple[str, str]:
        """``(user, server)`` whose password ``needs_password`` is about."""
        remembered = self.remembered()
        server = self.settings.db_cluster_url or (remembered.cluster_url if remembered else "")
        user = self.settings.db_user or (remembered.user if remembered else "")
        return user, server

    def target(self, login: Login | None = None, password: SecretStr | None = None) -> Target:
        """The database to open: with ``login`` (typed in the TUI) or ``password`` (typed at
        the terminal) applied. A malformed ``MONGODB_URI`` raises ConfigurationError."""
        from simulator.logging_setup import register_secret

        settings = self.settings
        remembered = None if login is not None else self.remembered()
        if login is not None:
            register_secret(login.password.get_secret_value())
            settings = settings.model_copy(
                update={
                    "mongodb_uri": None,
                    "db_cluster_url": login.cluster_url,
                    "db_user": login.user,
                    "db_password": login.password,
                }
            )
        elif password is not None:
            register_secret(password.get_secret_value())
            settings = settings.model_copy(update={"db_password": password})
        _register_secrets(settings, remembered)
        uri = settings.mongodb_connection_uri(remembered)
        if login is not None:
            source = Source.login
        elif settings.mongodb_uri is not None:
            source = Source.uri
        elif settings.db_cluster_url:
            source = Source.cluster
        elif remembered is not None:
            source = Source.remembered
        else:
            source = Source.embedded
        return Target(source, settings, uri, remembered)

    # ------------------------------------------------------------------ opening

    async def open(self, target: Target) -> OpenedStore:
        """Open the target's database (the embedded server is started or joined). Raises
        DatabaseUnavailableError, AuthenticationError or ConfigurationError, each naming the
        server and what to do; never falls back to another database."""
        from simulator.db import mongo

        store, server = await mongo.open_store(
            target.settings, target.remembered, advice=target.advice
        )
        return OpenedStore(store, server, target)

    async def services(self, store: Store) -> Services:
        """The services on ``store``, for the injected user or the one the store says."""
        from simulator.services.container import build_services

        return await build_services(
            self.settings, store, self.user, backends=self.backends, bus=self.bus
        )

    @contextlib.asynccontextmanager
    async def session(
        self, *, ask_password: PasswordPrompt | None = terminal_password
    ) -> AsyncIterator[Services]:
        """The services for the duration of a command: a password is asked for when one is
        needed (``ask_password``; None: refuse), and the model clients, the store and the
        embedded server are closed afterwards."""
        password = None
        self.remembered()  # read once; its notice (an old plain-text password removed) is told
        if self.credentials.notice:
            print(f"note: {self.credentials.notice}", file=sys.stderr)
        if self.needs_password():
            user, server = self.password_for()
            if ask_password is None:
                raise AuthenticationError(
                    f"No password is known for {user} at {server}.", title="Login needed"
                )
            password = ask_password(user, server)
        opened = await self.open(self.target(password=password))
        try:
            services = await self.services(opened.store)
            try:
                yield services
            finally:
                await services.aclose()
        finally:
            await opened.close()


def _register_secrets(settings: Settings, remembered: Credentials | None) -> None:
    """Scrub every configured or remembered secret from the logs from now on."""
    from simulator.logging_setup import register_secret
    from simulator.services.identity import password_from_uri

    for secret in (
        settings.db_password,
        settings.openai_api_key,
        remembered.password if remembered is not None else None,  # None: not kept
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.mongodb_uri is not None:
        register_secret(password_from_uri(settings.mongodb_uri.get_secret_value()))


__all__ = [
    "AppRoot",
    "Login",
    "OpenedStore",
    "PasswordPrompt",
    "Source",
    "Target",
    "terminal_password",
]
