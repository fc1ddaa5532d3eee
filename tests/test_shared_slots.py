"""Endpoint slots shared by processes through the database (llm/shared_limits.py), as each
process sees them, on the embedded server: a slot is kept for this process's next call of the
same endpoint for a moment instead of being freed and taken again (two writes per call made the
database bound three workers on one machine), freed for the others after that moment, at once
when its call failed, and by ``release_idle`` at the end of a run; a pool sends a call to an
endpoint where the process keeps a free slot."""

from __future__ import annotations

import asyncio

import pytest

from simulator.domain import ModelRef, PoolEndpoint, Provider
from simulator.llm.pools import Member, Pool
from simulator.llm.shared_limits import SharedLimits
from tests.plugins.waiting import wait_until

EP = "http://gpu1:8000/v1"


async def _holder(store, slot_id: str) -> str | None:  # type: ignore[no-untyped-def]
    docs = await store.slots.get([slot_id])
    return docs[0]["holder"] if docs else None


async def test_a_slot_is_kept_for_the_next_call_of_this_process_then_released(store) -> None:  # type: ignore[no-untyped-def]
    limits = SharedLimits(store.slots, "A", linger_s=3600)  # kept until released
    async with limits.slot(EP, 1):
        first = await _holder(store, f"{EP}#0")
    assert first is not None and first.startswith("A#")
    # the call ended: the slot stays held for this process's next call, which takes no new one
    assert await _holder(store, f"{EP}#0") == first
    async with limits.slot(EP, 1):
        assert await _holder(store, f"{EP}#0") == first
    assert (limits.taken, limits.reused) == (1, 1)
    await limits.release_idle()  # the end of a run frees what the process keeps
    assert await _holder(store, f"{EP}#0") is None


async def test_a_kept_slot_goes_to_another_process_once_its_moment_has_passed(store) -> None:  # type: ignore[no-untyped-def]
    a = SharedLimits(store.slots, "A", linger_s=0.2)
    b = SharedLimits(store.slots, "B")
    async with a.slot(EP, 1):
        pass
    got: list[str | None] = []

    async def call_from_b() -> None:
        async with b.slot(EP, 1):
            got.append(await _holder(store, f"{EP}#0"))

    task = asyncio.create_task(call_from_b())
    await asyncio.wait_for(task, 60)  # hang guard: B waits for A's linger, then takes the slot
    assert got and got[0] is not None and got[0].startswith("B#")
    assert (a.taken, b.taken) == (1, 1)
    await b.release_idle()
    assert await _holder(store, f"{EP}#0") is None


async def test_a_failed_call_frees_its_slot_at_once(store) -> None:  # type: ignore[no-untyped-def]
    limits = SharedLimits(store.slots, "A", linger_s=3600)
    with pytest.raises(RuntimeError):
        async with limits.slot(EP, 1):
            raise RuntimeError("the server refused")
    assert await _holder(store, f"{EP}#0") is None
    assert limits.idle_endpoints() == set()


async def test_a_slot_kept_too_long_is_freed_and_taken_again(store) -> None:  # type: ignore[no-untyped-def]
    limits = SharedLimits(store.slots, "A", linger_s=3600, keep_s=0.0)
    async with limits.slot(EP, 1):
        first = await _holder(store, f"{EP}#0")
    # with no time to keep it, the ended call freed it for every process
    await wait_until(lambda: _none(store), what="the slot freed")
    async with limits.slot(EP, 1):
        second = await _holder(store, f"{EP}#0")
    assert first != second and (limits.taken, limits.reused) == (2, 0)
    await limits.release_idle()


async def _none(store) -> bool:  # type: ignore[no-untyped-def]
    return await _holder(store, f"{EP}#0") is None


def _member(name: str, in_flight: int, limit: int = 2) -> Member:
    endpoint = PoolEndpoint(base_url=f"http://{name}:8000/v1", concurrency=limit, name=name)
    pool_ref = ModelRef(provider=Provider.openai, model="m", endpoints=[endpoint])
    return Member(endpoint, pool_ref.member(endpoint), limit, in_flight=in_flight)


def test_a_pool_prefers_an_endpoint_where_the_process_keeps_a_free_slot() -> None:
    a, b, c = _member("a", 0), _member("b", 1), _member("c", 2)
    pool = Pool([a, b, c])
    assert pool.pick() is a  # the least loaded
    assert pool.pick(prefer={b.ref.endpoint}) is b  # a slot kept there: no wait for one
    # not where this process is at the endpoint's limit, nor where the endpoint is out
    assert pool.pick(prefer={c.ref.endpoint}) is a
    b.failures, b.down_until = 1, float("inf")
    assert pool.pick(prefer={b.ref.endpoint}) is a
