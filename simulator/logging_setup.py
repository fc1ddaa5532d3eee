"""Rotating log files under ``logs/``; a filter masks anything that looks like a secret."""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

from simulator import paths

_SECRET_PATTERNS = [
    (re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]+):[^@\s]*@"), r"\1:***@"),
    (re.compile(r"\b(sk-[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+"), r"\1***"),
    (re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"), r"\1***"),
    (re.compile(r"(?i)((?:api[_-]?key|password|passwd|secret|token)\s*[=:]\s*)\S+"), r"\1***"),
]
_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Every log record is scrubbed of this exact value from now on."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def scrub(text: str) -> str:
    for secret in _registered_secrets:
        text = text.replace(secret, "***")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class SecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


_configured: Path | None = None


def setup_logging(log_dir: Path | None = None, level: str | None = None) -> Path:
    """Log to ``<log_dir>/simulator.log`` (rotating, 5 x 5 MB). Returns the log file's path."""
    global _configured
    log_dir = Path(log_dir) if log_dir else paths.default_log_dir()
    log_file = log_dir / "simulator.log"
    if _configured == log_file:
        return log_file
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_simulator", False):
            root.removeHandler(h)
    handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=5_000_000, backupCount=5, encoding="utf-8"
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    )
    handler.addFilter(SecretFilter())
    handler._simulator = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    for noisy in ("httpx", "httpcore", "pymongo", "neosqlite", "nx_27017", "asyncio", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = log_file
    return log_file
