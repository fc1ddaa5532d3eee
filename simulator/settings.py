"""Settings from the environment and ``.env`` (read, never written)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote_plus

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from simulator.credentials import Credentials
from simulator.domain.errors import ConfigurationError


class Settings(BaseSettings):
    """Every variable is documented in ``.env_template``."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `.env_template` copied to `.env` leaves `MONGODB_URI=` etc. empty: that means "not set".
        env_ignore_empty=True,
    )

    mongodb_uri: SecretStr | None = None
    db_user: str | None = None
    db_password: SecretStr | None = None
    db_cluster_url: str | None = None
    mongodb_db: str = "simulator"
    mongodb_timeout_ms: int = Field(default=5000, ge=100)

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    ollama_host: str | None = None
    ollama_concurrency: int = Field(default=2, ge=1)
    openai_concurrency: int = Field(default=16, ge=1)
    llm_timeout_s: float = Field(default=120.0, gt=0)
    llm_max_attempts: int = Field(default=4, ge=1)

    simulator_data_dir: Path | None = None
    simulator_log_dir: Path | None = None
    log_level: str = "INFO"
    # Optional YAML/JSON price table: {"provider:model": {"input": $/1M, "output": $/1M}}
    price_table: Path | None = None

    def mongodb_connection_uri(self, remembered: Credentials | None = None) -> SecretStr | None:
        """The URI to connect to, or None when the embedded server should be used.

        Order: ``MONGODB_URI``; then the trio ``DB_USER``/``DB_PASSWORD``/``DB_CLUSTER_URL`` (a
        cluster value that already is a URI is used as is; credentials are URL-escaped; a missing
        password is taken from remembered credentials for the same user and cluster); then the
        remembered credentials alone (auto-login); else None (the embedded server).
        """
        if self.mongodb_uri is not None:
            uri = self.mongodb_uri.get_secret_value().strip()
            if not uri.startswith(("mongodb://", "mongodb+srv://")):
                raise ConfigurationError(
                    "MONGODB_URI must start with mongodb:// or mongodb+srv:// "
                    "(check your environment or .env)",
                    title="Invalid MONGODB_URI",
                )
            return SecretStr(uri)
        if self.db_cluster_url:
            password = self.db_password.get_secret_value() if self.db_password else None
            if (
                password is None
                and remembered is not None
                and remembered.cluster_url == self.db_cluster_url
                and remembered.user == self.db_user
            ):
                password = remembered.password.get_secret_value()
            return SecretStr(build_uri(self.db_cluster_url, self.db_user, password))
        if remembered is not None:
            return SecretStr(
                build_uri(
                    remembered.cluster_url, remembered.user, remembered.password.get_secret_value()
                )
            )
        return None

    def needs_password(self, remembered: Credentials | None = None) -> bool:
        """True when a server and user are configured but no password is known: ask for one."""
        if self.mongodb_uri is not None or not self.db_cluster_url or not self.db_user:
            return False
        if self.db_cluster_url.startswith(("mongodb://", "mongodb+srv://")):
            return False
        if self.db_password is not None:
            return False
        return not (
            remembered is not None
            and remembered.cluster_url == self.db_cluster_url
            and remembered.user == self.db_user
        )

    @property
    def uses_embedded_server(self) -> bool:
        """No server configured (remembered credentials, when present, override this)."""
        return self.mongodb_uri is None and not self.db_cluster_url


def build_uri(cluster: str, user: str | None, password: str | None) -> str:
    cluster = cluster.strip()
    if cluster.startswith(("mongodb://", "mongodb+srv://")):
        return cluster
    if user and password:
        creds = f"{quote_plus(user)}:{quote_plus(password)}@"
    elif user:
        creds = f"{quote_plus(user)}@"
    else:
        creds = ""
    # A bare host name of an Atlas cluster uses SRV; a host:port pair does not.
    scheme = "mongodb+srv" if ":" not in cluster and "." in cluster and creds else "mongodb"
    return f"{scheme}://{creds}{cluster.rstrip('/')}/"


_URI_PASSWORD = re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]+):\S*@")


def redact_uri(uri: str) -> str:
    """The text with the password of every MongoDB URI in it replaced by ``***``.

    Safe to show and log. The password part runs to the last ``@`` of the URI, so a password with
    an unescaped ``@`` or ``/`` (a malformed URI) is still hidden whole; erring towards hiding more.
    """
    return _URI_PASSWORD.sub(r"\1:***@", uri)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
