"""The composition root and the embedded server's commands, as a user runs them: `main.py
--help`, `simulator db status`, and `simulator db serve` giving a URI a plain pymongo client
can use (foundation acceptance 2)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pymongo

REPO = Path(__file__).resolve().parent.parent


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MONGODB_URI", "DB_CLUSTER_URL"}}
    return {**env, "SIMULATOR_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO)}


def _simulator(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args],
        capture_output=True,
        text=True,
        env=_env(data_dir),
        cwd=data_dir,
        timeout=60,
    )


def test_main_help_exits_zero_and_lists_every_command(tmp_path: Path) -> None:
    done = _simulator("--help", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("tui", "db", "run", "resume", "experiments", "export", "commons", "login"):
        assert re.search(rf"^\s+{command}\b", done.stdout, re.M), command


def test_db_serve_gives_a_uri_pymongo_can_use_and_status_reports_it(tmp_path: Path) -> None:
    before = _simulator("db", "status", data_dir=tmp_path)
    assert before.returncode == 0, before.stderr
    assert "not running" in before.stdout
    assert str(tmp_path / "mongo") in before.stdout

    serve = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "db", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        assert serve.stdout is not None
        deadline = time.monotonic() + 60  # wait deadline
        uri = None
        while uri is None and time.monotonic() < deadline:  # wait deadline
            line = serve.stdout.readline()
            if not line:
                break
            found = re.search(r"mongodb://\S+", line)
            uri = found.group(0) if found else None
        assert uri, f"no URI printed; stderr: {serve.stderr.read() if serve.stderr else ''}"

        with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            client["plain"]["things"].insert_one({"_id": "one", "n": 1})
            assert client["plain"]["things"].find_one({"_id": "one"}) == {"_id": "one", "n": 1}

        status = _simulator("db", "status", data_dir=tmp_path)
        assert "running" in status.stdout and "not running" not in status.stdout
        assert uri in status.stdout
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)
    after = _simulator("db", "status", data_dir=tmp_path)
    assert "not running" in after.stdout
