"""Who the current user is.

- On a real MongoDB (or Atlas) you are the database user you authenticated as: the server's
  ``connectionStatus`` says so; if it cannot (an old server, a restricted user), the user name in
  the connection URI is used.
- On the embedded local server there is no authentication: you are the operating-system account
  the process runs as, looked up from its user id (never from ``USER``/``LOGNAME``, which anyone
  can set). That is a convenience for a single-user store, not a security boundary: whoever can
  read the data directory can open the database with any MongoDB client.

Ownership of experiments, batches and conversations is this name (docs/identity.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import unquote

from pymongo.errors import PyMongoError

if TYPE_CHECKING:
    from simulator.db.store import Store
    from simulator.settings import Settings

log = logging.getLogger(__name__)

STATUS_TIMEOUT_S = 5.0


def os_user() -> str:
    """The operating-system account this process runs as, from its user id (the passwd
    entry), never from environment variables; never empty."""
    try:
        import pwd
    except ImportError:  # Windows: the account of the process's access token
        try:
            return os.getlogin() or "local"
        except OSError:
            return "local"
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name or f"uid{uid}"
    except KeyError:  # no passwd entry for the uid (some containers)
        return f"uid{uid}"


def user_from_uri(uri: str | None) -> str | None:
    """The (unescaped) user name of a MongoDB URI, or None. Never returns the password."""
    if not uri or "://" not in uri:
        return None
    rest = uri.split("://", 1)[1].split("/", 1)[0]
    if "@" not in rest:
        return None
    userinfo = rest.rsplit("@", 1)[0]
    user = unquote(userinfo.split(":", 1)[0])
    return user or None


def password_from_uri(uri: str | None) -> str | None:
    """The (unescaped) password of a MongoDB URI, or None: only for scrubbing it from logs."""
    if not uri or "://" not in uri:
        return None
    rest = uri.split("://", 1)[1]
    if "@" not in rest:
        return None
    userinfo = rest.rsplit("@", 1)[0]
    if ":" not in userinfo:
        return None
    return unquote(userinfo.split(":", 1)[1]) or None


def user_from_status(status: object) -> str | None:
    """The first authenticated user in a ``connectionStatus`` reply, or None."""
    if not isinstance(status, dict):
        return None
    users = (status.get("authInfo") or {}).get("authenticatedUsers") or []
    for entry in users:
        if isinstance(entry, dict) and entry.get("user"):
            return str(entry["user"])
    return None


async def authenticated_user(store: Store) -> str | None:
    """Ask the server who we are (bounded in time); None when it does not say."""
    client = getattr(store, "client", None)
    if client is None:
        return None
    try:
        status = await asyncio.wait_for(
            client.admin.command("connectionStatus"), timeout=STATUS_TIMEOUT_S
        )
    except (PyMongoError, TimeoutError) as exc:
        log.debug("connectionStatus unavailable (%s); using the URI's user", type(exc).__name__)
        return None
    return user_from_status(status)


async def current_user(store: Store, settings: Settings | None = None) -> str:
    """The name the app acts as: authenticated MongoDB user, else the URI's user, else the
    configured ``DB_USER``, else the operating-system account (the embedded server)."""
    user = await authenticated_user(store)
    if user:
        return user
    user = user_from_uri(getattr(store, "uri_redacted", None))
    if user:
        return user
    if settings is not None and settings.db_user and not settings.uses_embedded_server:
        return settings.db_user
    return os_user()
