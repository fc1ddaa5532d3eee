"""Who may do what: anyone reads, runs and duplicates; only the owner edits and deletes.

The one place these rules live, so the CLI and the TUI refuse the same things with the same words.
(On a shared server the same rules can be enforced by MongoDB roles too: docs/identity.md.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pymongo.errors import OperationFailure

from simulator.domain.errors import PermissionDeniedError

UNAUTHORIZED = 13  # MongoDB's error code when a user's roles lack a privilege


def is_owner(owner: str, user: str) -> bool:
    """Owners compare exactly; an empty owner (data from before ownership) belongs to no one."""
    return bool(owner) and owner == user


def require_owner(owner: str, user: str, action: str, what: str, *, hint: str = "") -> None:
    """Raise PermissionDeniedError unless ``user`` owns the object.

    ``action`` is a verb ("delete", "edit"), ``what`` names the object ("experiment 'Prison'").
    """
    if is_owner(owner, user):
        return
    whose = f"{owner}'s" if owner else "an unowned"
    extra = f" {hint}" if hint else ""
    raise PermissionDeniedError(
        f"You ({user}) cannot {action} {what}: it is {whose}, and only its owner can "
        f"{action} it.{extra}"
    )


@contextlib.contextmanager
def server_permission(action: str, what: str) -> Iterator[None]:
    """The server's own refusal (MongoDB roles, docs/identity.md) as PermissionDeniedError."""
    try:
        yield
    except OperationFailure as exc:
        if exc.code != UNAUTHORIZED:
            raise
        raise PermissionDeniedError(
            f"The database refused to {action} {what}: your MongoDB user's roles do not allow "
            "it. Ask whoever manages the database (see docs/identity.md)."
        ) from None
