"""Every path the application uses comes from here (platformdirs), so tests can redirect them all
with one environment variable (``SIMULATOR_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "llm-interaction-simulator"


def data_dir() -> Path:
    """Where the embedded database and its pid/log files live."""
    override = os.environ.get("SIMULATOR_DATA_DIR")
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Where remembered credentials (mode 0600) live; never the project's ``.env``."""
    override = os.environ.get("SIMULATOR_CONFIG_DIR")
    path = Path(override).expanduser() if override else Path(platformdirs.user_config_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_db_dir() -> Path:
    path = data_dir() / "mongo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_log_dir() -> Path:
    """``logs/`` beside the project when run from a checkout, else the platform's log directory."""
    override = os.environ.get("SIMULATOR_LOG_DIR")
    if override:
        return Path(override).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists() and os.access(checkout, os.W_OK):
        return checkout / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME))


def exports_dir() -> Path:
    path = Path.cwd() / "exports"
    return path
