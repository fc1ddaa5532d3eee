"""Remembered MongoDB credentials ("remember me" / auto-login).

Where they go, in order of preference:

1. the operating system's keyring (when a real backend is available): the password lives there and
   ``credentials.json`` in the user's config directory holds only the user name and the cluster;
2. otherwise ``credentials.json`` alone, created with mode 0600 (readable only by the user).

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

from pydantic import SecretStr

from simulator import paths

log = logging.getLogger(__name__)

KEYRING_SERVICE = "llm-interaction-simulator"
FILE_NAME = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    cluster_url: str
    user: str
    password: SecretStr

    def __repr__(self) -> str:  # never show the password, even in a debugger or traceback
        return f"Credentials(cluster_url={self.cluster_url!r}, user={self.user!r}, password=***)"


def _keyring():
    """The keyring module when a usable backend exists, else None."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return keyring
    except Exception:  # a broken keyring setup must not stop the app
        log.warning("keyring unavailable; falling back to a private file")
        return None


class CredentialStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or paths.config_dir()
        self.path = self.directory / FILE_NAME

    @property
    def uses_keyring(self) -> bool:
        return _keyring() is not None

    def save(self, creds: Credentials) -> str:
        """Remember ``creds``; returns where the password went ("keyring" or the file path)."""
        kr = _keyring()
        record: dict[str, str] = {"cluster_url": creds.cluster_url, "user": creds.user}
        if kr is not None:
            kr.set_password(KEYRING_SERVICE, _key(creds), creds.password.get_secret_value())
            record["password_in"] = "keyring"
            where = "keyring"
        else:
            record["password_in"] = "file"
            record["password"] = creds.password.get_secret_value()
            where = str(self.path)
        self._write_private(json.dumps(record, indent=2))
        log.info("remembered credentials for %s (password in %s)", creds.user, where)
        return where

    def load(self) -> Credentials | None:
        if not self.path.exists():
            return None
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            cluster, user = record["cluster_url"], record["user"]
        except (OSError, ValueError, KeyError):
            log.warning("ignoring an unreadable remembered-credentials file at %s", self.path)
            return None
        if record.get("password_in") == "keyring":
            kr = _keyring()
            password = kr.get_password(KEYRING_SERVICE, f"{user}@{cluster}") if kr else None
        else:
            password = record.get("password")
        if not password:
            return None
        return Credentials(cluster_url=cluster, user=user, password=SecretStr(password))

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

    def _write_private(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # Created 0600 from the start: there is no moment when others could read it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def _key(creds: Credentials) -> str:
    return f"{creds.user}@{creds.cluster_url}"
