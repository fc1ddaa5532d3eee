"""Remembered MongoDB logins ("remember me" / auto-login).

The password goes to the operating system's keyring, and only there: ``credentials.json`` in the
user's config directory holds the user name and the cluster (and says where the password is).
Without a usable keyring the password is not kept at all: the login (server and user name) is
remembered and the password is asked for each time, or read from ``DB_PASSWORD`` in the user's own
environment or ``.env``. The app never writes a password in plain text.

Older versions wrote the password into ``credentials.json`` when there was no keyring. Such a
file is read once more only to remove the password from it, and the user is told so (``notice``).

They never go into the project's ``.env``, which belongs to the user and is never written.
``simulator logout`` (``forget()``) removes both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from simulator import paths

log = logging.getLogger(__name__)

KEYRING_SERVICE = "llm-interaction-simulator"
FILE_NAME = "credentials.json"
NOT_KEPT = "not kept"  # what save() returns when there is no keyring


@dataclass(frozen=True)
class Credentials:
    cluster_url: str
    user: str
    password: SecretStr | None  # None: a remembered login whose password is asked each time

    def __repr__(self) -> str:  # never show the password, even in a debugger or traceback
        return f"Credentials(cluster_url={self.cluster_url!r}, user={self.user!r}, password=***)"


def _keyring() -> Any:
    """The keyring module when a usable backend exists, else None."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return keyring
    except Exception:  # a broken keyring setup must not stop the app
        log.warning("keyring unavailable; passwords are not kept")
        return None


class CredentialStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or paths.config_dir()
        self.path = self.directory / FILE_NAME
        #: Something the user should be told after ``load`` (an old plain-text password removed).
        self.notice: str | None = None

    @property
    def uses_keyring(self) -> bool:
        return _keyring() is not None

    def save(self, creds: Credentials) -> str:
        """Remember ``creds``: the password in the keyring ("keyring" is returned), or, without
        one, only the server and user name (``NOT_KEPT`` is returned)."""
        kr = _keyring()
        record: dict[str, str] = {"cluster_url": creds.cluster_url, "user": creds.user}
        if kr is not None and creds.password is not None:
            kr.set_password(KEYRING_SERVICE, _key(creds), creds.password.get_secret_value())
            record["password_in"] = "keyring"
            where = "keyring"
        else:
            record["password_in"] = "nowhere"  # asked each time, or DB_PASSWORD
            where = NOT_KEPT
        self._write_private(json.dumps(record, indent=2))
        log.info("remembered the login of %s (password: %s)", creds.user, where)
        return where

    def load(self) -> Credentials | None:
        """The remembered login, its password from the keyring (None when it is not kept)."""
        if not self.path.exists():
            return None
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            cluster, user = str(record["cluster_url"]), str(record["user"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable remembered-login file at %s", self.path)
            return None
        if "password" in record:  # written by an older version: never used, removed now
            self._remove_plain_password(record)
        password = None
        if record.get("password_in") == "keyring":
            kr = _keyring()
            password = kr.get_password(KEYRING_SERVICE, f"{user}@{cluster}") if kr else None
        return Credentials(
            cluster_url=cluster, user=user, password=SecretStr(password) if password else None
        )

    def forget(self) -> bool:
        """Remove remembered credentials; True if there were any."""
        existed = self.path.exists()
        if existed:
            with contextlib.suppress(OSError, ValueError, KeyError):
                record = json.loads(self.path.read_text(encoding="utf-8"))
                kr = _keyring()
                if kr is not None and record.get("password_in") == "keyring":
                    with contextlib.suppress(Exception):
                        kr.delete_password(
                            KEYRING_SERVICE, f"{record['user']}@{record['cluster_url']}"
                        )
            self.path.unlink(missing_ok=True)
        return existed

    def _remove_plain_password(self, record: dict[str, Any]) -> None:
        record.pop("password", None)
        record["password_in"] = "nowhere"
        try:
            self._write_private(json.dumps(record, indent=2))
        except OSError as exc:
            self.notice = (
                f"{self.path} holds your MongoDB password in plain text (written by an older "
                f"version) and could not be rewritten ({exc.strerror or exc}): delete it "
                "('simulator logout'); the password is not used."
            )
        else:
            self.notice = (
                f"An older version kept your MongoDB password in plain text in {self.path}; it "
                "was removed from that file and is no longer used. Without a keyring the "
                "password is asked each time (or set DB_PASSWORD in your environment or .env)."
            )
        log.warning("removed a plain-text password from %s", self.path)

    def _write_private(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # Created 0600 from the start: the user name and server are nobody else's business.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def _key(creds: Credentials) -> str:
    return f"{creds.user}@{creds.cluster_url}"
