"""Opening the database as the current user, for headless commands.

Uses the configured server (``MONGODB_URI`` or ``DB_CLUSTER_URL``), the remembered login of
``simulator login`` (auto-login), or the embedded local server, in that order
(``Settings.mongodb_connection_uri``), and says who the user is (``identity.current_user``).
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr

from simulator.credentials import Credentials, CredentialStore
from simulator.domain.errors import AuthenticationError
from simulator.services.identity import current_user


def remembered_credentials(settings: Any) -> Credentials | None:
    """The login remembered by ``simulator login``, unless ``MONGODB_URI`` overrides it (its
    password is None when no keyring keeps it). A notice of the credential store (an old
    plain-text password removed) is printed on stderr."""
    if settings.mongodb_uri is not None:
        return None
    store = CredentialStore()
    creds = store.load()
    if store.notice:
        print(f"note: {store.notice}", file=sys.stderr)
    return creds


def with_typed_password(settings: Any, remembered: Credentials | None) -> Any:
    """``settings`` with the password typed at the terminal (masked) when one is needed and
    nothing keeps it; AuthenticationError when there is no terminal to ask at."""
    cluster = settings.db_cluster_url or (remembered.cluster_url if remembered else "")
    user = settings.db_user or (remembered.user if remembered else "")
    if not sys.stdin.isatty():
        raise AuthenticationError(
            f"No password is known for {user} at {cluster}: nothing keeps it (a password is "
            "only kept in an operating-system keyring). Run the command at a terminal to type "
            "it, set DB_PASSWORD in your environment or .env, or run 'simulator login'.",
            title="Login needed",
        )
    password = getpass.getpass(f"Password for {user} at {cluster}: ")
    if not password:
        raise AuthenticationError("No password typed; nothing was done.", title="Login needed")
    from simulator.logging_setup import register_secret

    register_secret(password)
    return settings.model_copy(update={"db_password": SecretStr(password)})


def register_secrets(settings: Any, remembered: Credentials | None = None) -> None:
    """Scrub every configured or remembered secret from the logs from now on."""
    from simulator.logging_setup import register_secret
    from simulator.services.identity import password_from_uri

    for secret in (
        getattr(settings, "db_password", None),
        getattr(settings, "openai_api_key", None),
        remembered.password if remembered is not None else None,  # None: not kept
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    uri = getattr(settings, "mongodb_uri", None)
    if uri is not None:
        register_secret(password_from_uri(uri.get_secret_value()))


@contextlib.asynccontextmanager
async def user_session(settings: Any = None) -> AsyncIterator[tuple[Any, str]]:
    """``(store, user)`` for the duration of a command; the store is closed afterwards."""
    from simulator.db.mongo import opened_store
    from simulator.settings import load_settings

    settings = settings if settings is not None else load_settings()
    remembered = remembered_credentials(settings)
    register_secrets(settings, remembered)
    if settings.needs_password(remembered):
        settings = with_typed_password(settings, remembered)
    async with opened_store(settings, remembered) as store:
        yield store, await current_user(store, settings)


def normalise_cluster(cluster: str) -> str:
    """A server address as ``simulator login`` stores it: host, host:port or an Atlas host.

    A ``mongodb://`` or ``mongodb+srv://`` prefix is dropped (the scheme is chosen again from the
    address); an address that carries a user name or password is refused, so credentials are only
    ever typed at the masked prompt.
    """
    from simulator.domain.errors import ConfigurationError

    value = cluster.strip()
    for scheme in ("mongodb+srv://", "mongodb://"):
        if value.startswith(scheme):
            value = value[len(scheme) :]
    value = value.rstrip("/")
    if not value:
        raise ConfigurationError(
            "Give the MongoDB server's address, e.g. cluster0.abcde.mongodb.net."
        )
    if "@" in value:
        raise ConfigurationError(
            "Give the server address without a user name or password "
            "(e.g. cluster0.abcde.mongodb.net); the password is asked for separately.",
            title="Invalid server address",
        )
    return value


async def verify_login(settings: Any, cluster: str, user: str, password: str) -> str:
    """Connect with these credentials (bounded by ``MONGODB_TIMEOUT_MS``) and return the
    authenticated user name. Raises AuthenticationError ("refused the user name or password"),
    DatabaseUnavailableError (unreachable) or ConfigurationError; never with the password."""
    from simulator.db.mongo import connect_store
    from simulator.logging_setup import register_secret
    from simulator.settings import build_uri

    register_secret(password)
    uri = build_uri(normalise_cluster(cluster), user, password)
    store = await connect_store(uri, settings.mongodb_db, settings.mongodb_timeout_ms)
    try:
        return await current_user(store, settings)
    finally:
        await store.close()
