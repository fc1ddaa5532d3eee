"""Settings from the environment and ``.env`` (read, never written).

Every setting is checked when it is read (``load_settings``): a bad value becomes one
``ConfigurationError`` naming the variable, what is wrong with the value and what is accepted,
e.g. ``MONGODB_TIMEOUT_MS='abc': not a whole number; accepted: 100 to 600,000 (milliseconds)``.
The accepted ranges are listed in ``SETTING_RANGES`` (and in the README's configuration section).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from simulator.credentials import Credentials
from simulator.domain.errors import ConfigurationError

URI_SCHEMES = ("mongodb://", "mongodb+srv://")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DB_NAME_FORBIDDEN = '/\\. "$\x00'  # what MongoDB refuses in a database name

#: Accepted values of the numeric settings: (low, high, unit).
SETTING_RANGES: dict[str, tuple[float, float, str]] = {
    "mongodb_timeout_ms": (100, 600_000, "milliseconds"),
    "ollama_concurrency": (1, 256, "requests at once"),
    "openai_concurrency": (1, 1_024, "requests at once"),
    "llm_timeout_s": (0.1, 3_600, "seconds"),
    "llm_max_attempts": (1, 20, "attempts per call"),
}
_SECRET_SETTINGS = frozenset({"mongodb_uri", "db_password", "openai_api_key", "db_cluster_url"})


def _ranged(name: str, default: float) -> Any:
    low, high, _ = SETTING_RANGES[name]
    return Field(default=default, ge=low, le=high, allow_inf_nan=False)


def uri_problem(uri: str) -> str | None:
    """What is wrong with a MongoDB URI, found without any network access (scheme, hosts, SRV
    rules, TLS and authentication options), or None. Never repeats the password."""
    if not uri.startswith(URI_SCHEMES):
        return "must start with mongodb:// or mongodb+srv://"
    try:
        from pymongo.uri_parser_shared import _validate_uri
    except ImportError:  # another pymongo: the client reports problems when it connects
        return None
    try:
        parsed = _validate_uri(uri, validate=True, warn=False)
    except Exception as exc:  # InvalidURI, ConfigurationError, ValueError: all mean "bad URI"
        return f"{uri_topic(str(exc))}: {redact_uri(str(exc))}"
    fqdn = parsed.get("fqdn")
    if fqdn:
        try:
            ipaddress.ip_address(fqdn.strip("[]"))
        except ValueError:
            pass
        else:
            return (
                f"SRV: mongodb+srv:// needs a DNS host name (such as an Atlas cluster address), "
                f"not the IP address {fqdn}; use mongodb://{fqdn}/ for a server at an address"
            )
    return None


def uri_topic(message: str) -> str:
    """Which part of a MongoDB URI a driver message is about: SRV, TLS, authentication."""
    text = message.lower()
    if "srv" in text or "dns" in text:
        return "SRV"
    if "tls" in text or "ssl" in text or "certificate" in text:
        return "TLS option"
    if any(w in text for w in ("auth", "password", "username", "mechanism", "credential")):
        return "authentication option"
    return "invalid URI"


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
    mongodb_timeout_ms: int = _ranged("mongodb_timeout_ms", 5000)

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    ollama_host: str | None = None
    ollama_concurrency: int = _ranged("ollama_concurrency", 2)
    openai_concurrency: int = _ranged("openai_concurrency", 16)
    llm_timeout_s: float = _ranged("llm_timeout_s", 120.0)
    llm_max_attempts: int = _ranged("llm_max_attempts", 4)

    simulator_data_dir: Path | None = None
    simulator_log_dir: Path | None = None
    log_level: str = "INFO"
    # Optional YAML/JSON price table: {"provider:model": {"input": $/1M, "output": $/1M}}
    price_table: Path | None = None

    @field_validator("mongodb_uri")
    @classmethod
    def _valid_uri(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            problem = uri_problem(v.get_secret_value().strip())
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("db_cluster_url")
    @classmethod
    def _valid_cluster(cls, v: str | None) -> str | None:
        if v is not None and v.strip().startswith(URI_SCHEMES):
            problem = uri_problem(v.strip())
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("openai_base_url", "ollama_host")
    @classmethod
    def _valid_url(cls, v: str | None, info: ValidationInfo) -> str | None:
        from simulator.domain.models import url_problem

        if v is not None and v.strip():
            problem = url_problem(v, bare_host=info.field_name == "ollama_host")
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("mongodb_db")
    @classmethod
    def _valid_db_name(cls, v: str) -> str:
        v = v.strip()
        bad = sorted(set(v) & set(DB_NAME_FORBIDDEN))
        if not v or bad or len(v.encode()) > 63:
            what = (
                "is empty"
                if not v
                else f"may not contain {' '.join(repr(c) for c in bad)}"
                if bad
                else "is longer than 63 bytes"
            )
            raise ValueError(f"a database name {what}; use letters, digits, - and _")
        return v

    @field_validator("log_level")
    @classmethod
    def _valid_level(cls, v: str) -> str:
        level = v.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"not a log level; accepted: {', '.join(LOG_LEVELS)}")
        return level

    def mongodb_connection_uri(self, remembered: Credentials | None = None) -> SecretStr | None:
        """The URI to connect to, or None when the embedded server should be used.

        Order: ``MONGODB_URI``; then the trio ``DB_USER``/``DB_PASSWORD``/``DB_CLUSTER_URL`` (a
        cluster value that already is a URI is used as is; credentials are URL-escaped; a missing
        password is taken from remembered credentials for the same user and cluster); then the
        remembered credentials alone (auto-login; the password from ``DB_PASSWORD`` when no
        keyring keeps it); else None (the embedded server).
        """
        if self.mongodb_uri is not None:
            uri = self.mongodb_uri.get_secret_value().strip()
            problem = uri_problem(uri)
            if problem:
                raise ConfigurationError(
                    f"MONGODB_URI {problem} (check your environment or .env)",
                    title="Invalid MONGODB_URI",
                )
            return SecretStr(uri)
        if self.db_cluster_url:
            password = self.db_password.get_secret_value() if self.db_password else None
            if password is None and self._remembered_for_cluster(remembered):
                assert remembered is not None and remembered.password is not None
                password = remembered.password.get_secret_value()
            return SecretStr(build_uri(self.db_cluster_url, self.db_user, password))
        if remembered is not None:
            secret = self.db_password or remembered.password  # DB_PASSWORD: typed or .env
            return SecretStr(
                build_uri(
                    remembered.cluster_url,
                    remembered.user,
                    secret.get_secret_value() if secret else None,
                )
            )
        return None

    def _remembered_for_cluster(self, remembered: Credentials | None) -> bool:
        """The remembered login is for the configured server and user, with its password."""
        return (
            remembered is not None
            and remembered.password is not None
            and remembered.cluster_url == self.db_cluster_url
            and remembered.user == self.db_user
        )

    def needs_password(self, remembered: Credentials | None = None) -> bool:
        """True when a server and user are known but no password: ask for one. That is a
        configured ``DB_CLUSTER_URL`` + ``DB_USER`` without ``DB_PASSWORD`` (and no remembered
        password for them), or a remembered login whose password is not kept (no keyring)."""
        if self.mongodb_uri is not None:
            return False
        if not self.db_cluster_url:
            return (
                remembered is not None and remembered.password is None and self.db_password is None
            )
        if not self.db_user or self.db_cluster_url.startswith(URI_SCHEMES):
            return False
        if self.db_password is not None:
            return False
        return not self._remembered_for_cluster(remembered)

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
    """The settings from the environment and ``.env`` (and ``overrides``); a bad value raises
    ConfigurationError naming the variable, the problem and the accepted values (never a
    secret's value)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [_setting_problem(err) for err in exc.errors()]
        raise ConfigurationError(
            "; ".join(lines) + ". Check your environment or .env (see .env_template).",
            title="Invalid setting",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f".env in {Path.cwd()} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"position {exc.start}); save it as UTF-8.",
            title="Unreadable .env",
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f".env in {Path.cwd()} cannot be read: {exc.strerror or exc}.",
            title="Unreadable .env",
        ) from None
    except ValueError as exc:  # pydantic-settings' own parsing errors (SettingsError)
        raise ConfigurationError(f"{redact_uri(str(exc))}.", title="Invalid setting") from None


def _setting_problem(err: ErrorDetails) -> str:
    """One setting's problem: ``LLM_MAX_ATTEMPTS='0': must be ...; accepted: 1 to 20 ...``."""
    name = str(err["loc"][0]) if err.get("loc") else "?"
    variable = name.upper()
    value = err.get("input")
    shown = "(hidden)" if name in _SECRET_SETTINGS else repr(value)
    kind = err.get("type", "")
    if name in SETTING_RANGES:
        low, high, unit = SETTING_RANGES[name]
        whole = isinstance(Settings.model_fields[name].default, int)
        what = "a whole number" if whole else "a number"
        problem = (
            f"not {what}"
            if kind.endswith(("_parsing", "_type", "_from_float")) or kind == "finite_number"
            else "out of range"
        )
        return f"{variable}={shown}: {problem}; accepted: {what} from {low:,} to {high:,} ({unit})"
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if name in ("mongodb_uri", "db_cluster_url"):
        return f"{variable}: {message}"
    return f"{variable}={shown}: {message}"
