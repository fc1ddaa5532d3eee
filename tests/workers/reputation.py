"""SIGKILL worker of tests/test_reputation_resume.py: plays (or resumes) one reputation
conversation (see tests/workers/harness.py)."""

from __future__ import annotations

from simulator.scenarios.reputation import play
from tests.workers.harness import serve

if __name__ == "__main__":
    serve(play)
