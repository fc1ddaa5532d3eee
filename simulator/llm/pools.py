"""Model pools: one model served by several endpoints (Ollama hosts, vLLM replicas, API keys).

A ``ModelRef`` with ``endpoints`` is a pool. Each call goes to the least loaded healthy
endpoint (calls in flight, waiting ones included, over its own concurrency limit). An endpoint
whose call fails with a fault of the server (timeout, connection refused, 429, 5xx, a refused
key) is taken out at once (its circuit opens) and the call goes on at the next endpoint; the
failed endpoint is tried again after a cooldown that doubles with each failure in a row (1 s,
2 s, 4 s ... at most ``MAX_DOWN_S``), by one probing call at a time; its first success puts it
back. When every endpoint is out, calls wait for the first to come back. A call gives up after
``max_attempts`` tries per endpoint of the pool. Which endpoint answered goes with the result
(``ChatResult.endpoint``) into the stored message; keys never do, only their variable's name.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from simulator.domain import ModelRef, PoolEndpoint

BASE_DOWN_S = 1.0
MAX_DOWN_S = 60.0


@dataclass
class Member:
    """One endpoint of a pool and what this process knows of it."""

    endpoint: PoolEndpoint
    ref: ModelRef  # the pool's model as this endpoint serves it
    limit: int
    in_flight: int = 0  # calls routed here and not ended (waiting for its slot included)
    failures: int = 0  # in a row
    down_until: float = 0.0  # monotonic time; before it the endpoint is out
    probing: bool = False  # its one call after a cooldown is in flight

    @property
    def label(self) -> str:
        return self.endpoint.label

    def healthy(self, now: float) -> bool:
        if self.failures == 0:
            return True
        return now >= self.down_until and not self.probing


@dataclass
class Pool:
    members: list[Member]
    served: dict[str, int] = field(default_factory=dict)  # answers per endpoint label

    def pick(
        self, now: float | None = None, prefer: Collection[str] = frozenset()
    ) -> Member | None:
        """The least loaded healthy endpoint (the first listed among equals); None when all
        are out (see ``next_up``). ``prefer``: endpoints (``ModelRef.endpoint``) where this
        process already holds a free slot shared with other processes (llm/shared_limits.py):
        the least loaded of them with room here is taken first, as it needs no wait for one."""
        now = time.monotonic() if now is None else now
        healthy = [m for m in self.members if m.healthy(now)]
        if not healthy:
            return None
        ready = [m for m in healthy if m.ref.endpoint in prefer and m.in_flight < m.limit]
        best = min(ready or healthy, key=lambda m: m.in_flight / m.limit)
        if best.failures:
            best.probing = True
        return best

    def next_up(self) -> float:
        """When the first endpoint that is out may be tried again (monotonic time)."""
        waiting = [m.down_until for m in self.members if not m.probing]
        return min(waiting) if waiting else time.monotonic() + BASE_DOWN_S

    def succeeded(self, member: Member) -> None:
        member.failures, member.probing, member.down_until = 0, False, 0.0
        self.served[member.label] = self.served.get(member.label, 0) + 1

    def failed(self, member: Member, retry_after: float | None = None) -> float:
        """Take ``member`` out; returns its cooldown in seconds."""
        member.failures += 1
        member.probing = False
        down: float = min(MAX_DOWN_S, BASE_DOWN_S * 2.0 ** (member.failures - 1))
        if retry_after is not None:
            down = max(down, min(retry_after, MAX_DOWN_S))
        member.down_until = time.monotonic() + down
        return down

    def status(self) -> list[dict[str, object]]:
        """Each endpoint's state, for the Models tab and logs."""
        now = time.monotonic()
        return [
            {
                "endpoint": m.label,
                "limit": m.limit,
                "in_flight": m.in_flight,
                "healthy": m.failures == 0,
                "back_in_s": max(0.0, round(m.down_until - now, 1)) if m.failures else 0.0,
                "served": self.served.get(m.label, 0),
            }
            for m in self.members
        ]


def endpoint_fault(status: int | None, retryable: bool) -> bool:
    """A failure that says something about the endpoint (try another one), not about the
    request (which every endpoint would refuse the same way)."""
    return retryable or status in (401, 403)


__all__ = ["BASE_DOWN_S", "MAX_DOWN_S", "Member", "Pool", "endpoint_fault"]
