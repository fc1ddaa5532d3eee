"""``Backends``: the one object the engine talks to for every model call.

It routes a request to its provider's backend (chosen by ``ModelRef.provider``, never guessed from
the model name), holds a per-endpoint concurrency limit, and retries with backoff (see retry.py).
It also checks, on the first call of each model in a run, that the server read the system
message (see system_check.py); ``warnings_for(model)`` says what it found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from simulator.domain import ModelRef, Provider
from simulator.domain.errors import LLMError
from simulator.llm.base import ChatBackend, ChatRequest, ChatResult, EventSink, LLMEvent
from simulator.llm.dryrun import DryRunBackend
from simulator.llm.pools import Member, Pool, endpoint_fault
from simulator.llm.retry import CallError, RetryPolicy, call_with_retries, emit
from simulator.llm.system_check import dropped_system, judgeable, system_chars, warning_for
from simulator.settings import Settings, load_settings

log = logging.getLogger(__name__)

DRYRUN_CONCURRENCY = 64


class Backends:
    """Routes, limits and retries model calls.

    ``limits`` maps an endpoint (``ModelRef.endpoint``, e.g. ``"ollama:http://gpu:11434"``) or a
    provider name (``"ollama"``, ``"openai"``, ``"dryrun"``) to the number of calls allowed at once;
    unset ones come from settings (``OLLAMA_CONCURRENCY``, ``OPENAI_CONCURRENCY``). Timeout and
    attempts come from settings (``LLM_TIMEOUT_S``, ``LLM_MAX_ATTEMPTS``), the keyword arguments,
    or per model from ``ModelRef.options`` ``timeout_s`` / ``max_attempts``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        on_event: EventSink | None = None,
        limits: dict[str, int] | None = None,
        *,
        timeout_s: float | None = None,
        max_attempts: int | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.on_event = on_event
        self.limits = dict(limits or {})
        self.policy = RetryPolicy(
            timeout_s=timeout_s if timeout_s is not None else self.settings.llm_timeout_s,
            max_attempts=max_attempts
            if max_attempts is not None
            else self.settings.llm_max_attempts,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self._backends: dict[Provider, ChatBackend] = {}
        self._slots: dict[tuple[int, str], asyncio.Semaphore] = {}
        # the system-prompt check: (endpoint, model) -> dropped? (None: its server's counts
        # cannot tell), and the call being judged now
        self._dropped: dict[tuple[str, str], bool | None] = {}
        self._judging: dict[tuple[int, str, str], asyncio.Event] = {}
        self._pools: dict[str, Pool] = {}  # ModelRef.endpoint of a pool -> its endpoints
        self._shared: Any = None  # SharedLimits: the limits held across processes, when set

    # ------------------------------------------------------------------ routing

    def backend_for(self, ref: ModelRef) -> ChatBackend:
        backend = self._backends.get(ref.provider)
        if backend is None:
            if ref.provider is Provider.dryrun:
                backend = DryRunBackend()
            elif ref.provider is Provider.ollama:
                from simulator.llm.ollama import OllamaBackend

                backend = OllamaBackend(self.settings)
            elif ref.provider is Provider.openai:
                from simulator.llm.openai import OpenAIBackend

                backend = OpenAIBackend(self.settings, self.limit_for)
            else:  # pragma: no cover - Provider is a closed enum
                raise LLMError(f"unknown provider {ref.provider!r}")
            self._backends[ref.provider] = backend
        return backend

    def limit_for(self, ref: ModelRef) -> int:
        for key in (ref.endpoint, ref.base_url or "", ref.provider.value):
            if key in self.limits:
                return max(1, int(self.limits[key]))
        if ref.provider is Provider.ollama:
            return self.settings.ollama_concurrency
        if ref.provider is Provider.openai:
            return self.settings.openai_concurrency
        return DRYRUN_CONCURRENCY

    def share_limits(self, limits: Any) -> None:
        """Hold every endpoint's limit across processes too (llm/shared_limits.py): from now on
        a call takes one of the endpoint's slots in the database as well. None: local only."""
        self._shared = limits

    @property
    def shares_limits(self) -> bool:
        return self._shared is not None

    async def release_shared_slots(self) -> None:
        """Free the endpoint slots kept for this process's next calls (at the end of a run)."""
        if self._shared is not None:
            await self._shared.release_idle()

    def _slot(self, ref: ModelRef) -> AbstractAsyncContextManager[object]:
        # per event loop too: a semaphore that once made a call wait is bound to its loop
        key = (id(asyncio.get_running_loop()), ref.endpoint)
        sem = self._slots.get(key)
        if sem is None:
            sem = self._slots[key] = asyncio.Semaphore(self.limit_for(ref))
        if self._shared is None or ref.provider is Provider.dryrun:
            return sem
        return self._shared_slot(sem, ref)

    @contextlib.asynccontextmanager
    async def _shared_slot(self, sem: asyncio.Semaphore, ref: ModelRef) -> AsyncIterator[None]:
        async with sem, self._shared.slot(ref.endpoint, self.limit_for(ref)):
            yield

    def policy_for(self, ref: ModelRef) -> RetryPolicy:
        opts = ref.options
        if "timeout_s" not in opts and "max_attempts" not in opts:
            return self.policy
        return RetryPolicy(
            timeout_s=float(opts.get("timeout_s", self.policy.timeout_s)),
            max_attempts=max(1, int(opts.get("max_attempts", self.policy.max_attempts))),
            backoff_s=self.policy.backoff_s,
            max_backoff_s=self.policy.max_backoff_s,
        )

    # ------------------------------------------------------------------ calls

    def pool_for(self, ref: ModelRef) -> Pool:
        """The pool of ``ref`` (a ModelRef with endpoints), made on first use; each endpoint's
        own concurrency limit is registered as that endpoint's limit."""
        pool = self._pools.get(ref.endpoint)
        if pool is None:
            members = []
            for endpoint in ref.endpoints:
                member_ref = ref.member(endpoint)
                if endpoint.concurrency is not None:
                    self.limits.setdefault(member_ref.endpoint, endpoint.concurrency)
                members.append(Member(endpoint, member_ref, self.limit_for(member_ref)))
            pool = self._pools[ref.endpoint] = Pool(members)
        return pool

    def pool_status(self, ref: ModelRef) -> list[dict[str, Any]]:
        """Each endpoint of ``ref``'s pool: limit, calls in flight, health, answers served."""
        return self.pool_for(ref).status() if ref.endpoints else []

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One model call: to the pool's least loaded healthy endpoint when the model is a pool
        (llm/pools.py), else to its one endpoint."""
        if request.model.endpoints:
            return await self._chat_pool(request)
        return await self._chat_endpoint(request, self.policy_for(request.model), self.on_event)

    async def _chat_pool(self, request: ChatRequest) -> ChatResult:
        """Fail over across the pool's endpoints: an endpoint fault takes that endpoint out and
        the call goes on at another; at most ``max_attempts`` tries per endpoint."""
        ref = request.model
        pool = self.pool_for(ref)
        policy = self.policy_for(ref)
        once = replace(policy, max_attempts=1)
        budget = policy.max_attempts * len(pool.members)
        retries: list[dict[str, Any]] = []
        attempt = 0
        while True:
            member = pool.pick(prefer=self._shared.idle_endpoints() if self._shared else ())
            if member is None:  # every endpoint is out: wait for the first to come back
                await asyncio.sleep(max(0.01, pool.next_up() - time.monotonic()))
                continue
            attempt += 1
            member.in_flight += 1
            try:
                result = await self._chat_endpoint(replace(request, model=member.ref), once, None)
            except CallError as exc:
                if not endpoint_fault(exc.status, exc.retryable):
                    if member.probing:  # it answered: the endpoint is back
                        pool.succeeded(member)
                    await self._emit_failed(request, member.label, str(exc), attempt)
                    raise
                down = pool.failed(member, exc.retry_after)
                reason = f"{member.label}: {exc.reason}: {exc}"
                if attempt >= budget:
                    message = f"{exc} (gave up after {attempt} attempts across the pool)"
                    await self._emit_failed(request, member.label, message, attempt)
                    raise CallError(
                        message, retryable=True, reason=exc.reason, status=exc.status
                    ) from exc
                log.warning("%s: endpoint out for %.0f s (%s)", ref.label, down, reason)
                retries.append({"attempt": attempt, "reason": reason, "wait_s": 0.0})
                await emit(
                    self.on_event,
                    LLMEvent(
                        kind="retry",
                        endpoint=member.ref.endpoint,
                        model=ref.model,
                        reason=reason,
                        attempt=attempt,
                        meta=request.meta,
                    ),
                )
                continue
            finally:
                member.in_flight -= 1
            pool.succeeded(member)
            result.attempts = attempt
            result.retries = retries + result.retries
            result.endpoint = member.label
            return result

    async def _emit_failed(
        self, request: ChatRequest, where: str, reason: str, attempt: int
    ) -> None:
        await emit(
            self.on_event,
            LLMEvent(
                kind="failed",
                endpoint=where,
                model=request.model.model,
                reason=reason,
                attempt=attempt,
                meta=request.meta,
            ),
        )

    async def _chat_endpoint(
        self, request: ChatRequest, policy: RetryPolicy, on_event: EventSink | None
    ) -> ChatResult:
        """One model call with the endpoint's concurrency limit, timeout and retries.
        Raises ``LLMError`` (a ``CallError``) with a message a user can act on.

        The first call of a model that can be judged is the one the system-prompt check looks
        at; calls of that model sent while it is in flight return once it is judged, so every
        answer returned after the first one finds the verdict in ``warnings_for``."""
        ref = request.model
        backend = self.backend_for(ref)
        key = (ref.endpoint, ref.model)
        judging: asyncio.Event | None = None
        waiting: asyncio.Event | None = None
        if (
            key not in self._dropped
            and getattr(backend, "counts_whole_prompt", False)
            and judgeable(request.messages)
        ):
            loop_key = (id(asyncio.get_running_loop()), *key)
            waiting = self._judging.get(loop_key)
            if waiting is None:
                judging = self._judging[loop_key] = asyncio.Event()
        try:
            result = await call_with_retries(
                lambda: backend.chat(request),
                request,
                policy,
                where=ref.label,
                slot=lambda: self._slot(ref),
                on_event=on_event,
            )
            if judging is not None:
                self._judge(request, result)
        finally:
            if judging is not None:
                del self._judging[(id(asyncio.get_running_loop()), *key)]
                judging.set()
        if waiting is not None:
            await waiting.wait()
        return result

    def _judge(self, request: ChatRequest, result: ChatResult) -> None:
        ref = request.model
        # None when the server gave no count: its later answers will not either
        dropped = dropped_system(request.messages, result.prompt_tokens_total)
        self._dropped[(ref.endpoint, ref.model)] = dropped
        if dropped:
            log.warning(
                "%s: the server counted %d prompt tokens for a request of %d characters whose "
                "system message alone has %d: it does not read the system message (%s)",
                ref.label,
                result.prompt_tokens_total,
                sum(len(m.content) for m in request.messages),
                system_chars(request.messages),
                warning_for(ref.model),
            )

    def warnings_for(self, ref: ModelRef) -> list[str]:
        """What this run found wrong with ``ref``'s server so far (``system_prompt_dropped:
        <model>`` when it does not read the system message)."""
        if self._dropped.get((ref.endpoint, ref.model)):
            return [warning_for(ref.model)]
        return []

    def new_run(self) -> None:
        """Forget the verdicts of the system-prompt check: the next run judges its models
        again (a server may have been restarted with another chat template in between)."""
        self._dropped.clear()

    def cache_inputs(self, request: ChatRequest) -> dict[str, Any]:
        """What shapes an answer besides the messages, for the response cache's key: the
        sampling parameters as ``request``'s backend sends them (llm/cache.py)."""
        backend = self.backend_for(request.model)
        inputs = getattr(backend, "cache_inputs", None)
        if inputs is None:
            return request.model.params.model_dump(exclude_none=True)
        return dict(inputs(request))

    async def model_digest(self, ref: ModelRef) -> str | None:
        """The server's digest of ``ref``'s model, where it reports one (Ollama), else None."""
        digest = getattr(self.backend_for(ref), "model_digest", None)
        if digest is None:
            return None
        value = await digest(ref)
        return None if value is None else str(value)

    async def list_models(self, ref: ModelRef) -> list[str]:
        """Models offered at ``ref``'s endpoint; never pulls or creates anything."""
        return await self.backend_for(ref).list_models(ref)

    async def ensure_available(
        self, refs: Iterable[ModelRef], on_event: EventSink | None = None
    ) -> None:
        """Make every model usable before a run (Ollama pulls missing ones, with progress)."""
        seen: set[tuple[str, str]] = set()
        for ref in refs:
            if (ref.endpoint, ref.model) in seen:
                continue
            seen.add((ref.endpoint, ref.model))
            if ref.endpoints:
                await self._ensure_pool(ref, on_event or self.on_event)
                continue
            await self.backend_for(ref).ensure_available(ref, on_event or self.on_event)

    async def _ensure_pool(self, ref: ModelRef, on_event: EventSink | None) -> None:
        """A pool can run while one of its endpoints answers: those that do not are taken out
        (and tried again later); only a pool with no endpoint answering stops the run."""
        pool = self.pool_for(ref)
        problems: list[str] = []
        for member in pool.members:
            try:
                await self.backend_for(member.ref).ensure_available(member.ref, on_event)
            except LLMError as exc:
                pool.failed(member)
                problems.append(f"{member.label}: {exc}")
                log.warning("%s: endpoint %s is out at the start: %s", ref.label, member.label, exc)
        if len(problems) == len(pool.members):
            raise LLMError(
                f"No endpoint of the pool {ref.label} answers: " + "; ".join(problems),
                title="Model pool unavailable",
            )

    async def aclose(self) -> None:
        for backend in self._backends.values():
            close = getattr(backend, "aclose", None)
            if close is not None:
                await close()
        self._backends.clear()
