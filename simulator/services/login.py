"""``simulator login``: the server's address as it is remembered, and a login tested before it is.

Opening the database with a remembered login is the composition root's job
(``simulator.services.root.AppRoot``).
"""

from __future__ import annotations

from pydantic import SecretStr

from simulator.services.identity import current_user
from simulator.settings import Settings


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


async def verify_login(settings: Settings, cluster: str, user: str, password: str) -> str:
    """Connect with these credentials (bounded by ``MONGODB_TIMEOUT_MS``) and return the
    authenticated user name. Raises AuthenticationError ("refused the user name or password"),
    DatabaseUnavailableError (unreachable) or ConfigurationError; never with the password."""
    from simulator.services.root import AppRoot, Login

    root = AppRoot(settings)
    target = root.target(Login(normalise_cluster(cluster), user, SecretStr(password)))
    opened = await root.open(target)
    try:
        return await current_user(opened.store, target.settings)
    finally:
        await opened.close()
