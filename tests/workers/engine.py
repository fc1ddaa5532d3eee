"""SIGKILL worker of tests/test_engine_resume.py: runs (or resumes) one dialogue conversation
(see tests/workers/harness.py)."""

from __future__ import annotations

import simulator.roles  # noqa: F401
from simulator.engine.conversation import run_conversation
from tests.workers.harness import serve

if __name__ == "__main__":
    serve(run_conversation)
