"""CPU time per call of the OpenAI-compatible backend, against a fake server in another process.

A local fake OpenAI-compatible server (``tests/servers/openai_server.py``, answering at once) runs
as a subprocess, so this process's CPU time (``resource.getrusage``: user + system, all threads)
is the client's alone: ``Backends.chat`` with its concurrency slot and retry wrapper, building
and encoding the request, httpx, reading the answer. For histories of 2, 20 and 100 messages
(a system prompt of about 1,000 characters, then turns of about 300), it makes ``--calls`` calls
at ``--concurrency`` at once, after a warm-up, and divides the CPU time by the calls; each figure
is the median of ``--repeats`` rounds.

Beside it, measured in the same run, round by round in alternation: the same backend on httpx's
default transport (httpcore) instead of ``simulator.llm.http.LeanTransport``, and, when the
``openai`` package can be imported, the same calls through the SDK's
``AsyncOpenAI.chat.completions.create`` (the path this backend replaced, plugged into the same
``Backends``).

    python benchmarks/openai_cpu.py [--calls 400] [--concurrency 8] [--repeats 3]

The last line is one JSON object: per history length, ``cpu_ms_per_call`` (this backend),
``httpcore_cpu_ms_per_call`` (on httpx's default transport) and ``sdk_cpu_ms_per_call`` (null
without the SDK), with the calls per second of each, the load average, and ``target_ms`` (1.5,
issue 24). docs/benchmarks.md lists measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.domain import ModelRef, Provider, SamplingParams, TokenUsage  # noqa: E402
from simulator.llm import openai as openai_backend  # noqa: E402
from simulator.llm.base import CallMeta, ChatMessage, ChatRequest, ChatResult  # noqa: E402
from simulator.llm.registry import Backends  # noqa: E402
from simulator.settings import Settings  # noqa: E402

HISTORIES = (2, 20, 100)
TARGET_MS = 1.5

SERVER = """
import sys, time
from tests.servers.openai_server import FakeOpenAIServer
server = FakeOpenAIServer().start()
print(server.base_url, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""

SYSTEM = ("You are a fisher on a shared lake. " * 30).strip()  # about 1,000 characters
TURN = (
    "I think we should agree on a limit before anyone casts a net tomorrow, because the lake "
    "will not recover if each of us takes what they like; tell me what you think is fair. "
) * 2  # about 300 characters


def history(n: int) -> list[ChatMessage]:
    """A system prompt and ``n - 1`` alternating turns, ending on a user turn."""
    messages = [ChatMessage("system", SYSTEM)]
    for i in range(n - 1):
        role = "user" if (n - 1 - i) % 2 == 1 else "assistant"
        messages.append(ChatMessage(role, f"{i}: {TURN}"))  # type: ignore[arg-type]
    return messages


def httpcore_client(base_url: str, *, max_connections: int, headers: Any, timeout: Any) -> Any:
    """The endpoint's client on httpx's default transport (what LeanTransport replaces)."""
    import httpx

    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(headers=dict(headers), limits=limits, timeout=timeout)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class SdkBackend:
    """The path this backend replaced: the ``openai`` SDK's ``AsyncOpenAI``, one client per
    endpoint, its own retries off, the answer converted as the old backend did."""

    counts_whole_prompt = True

    def __init__(self, base_url: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key="no-key", base_url=base_url, max_retries=0)

    async def chat(self, request: ChatRequest) -> ChatResult:
        p = request.model.params
        sent = {"temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_tokens}
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        start = time.perf_counter()
        response = await self.client.chat.completions.create(  # type: ignore[call-overload]
            model=request.model.model,
            messages=messages,
            timeout=125,
            **sent,
        )
        usage = response.usage
        return ChatResult(
            text=response.choices[0].message.content or "",
            usage=TokenUsage(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            ),
            latency_ms=(time.perf_counter() - start) * 1000,
            finish_reason=response.choices[0].finish_reason,
            raw=response.model_dump(mode="json", exclude_none=True),
            sent_params=sent,
        )

    async def list_models(self, model: ModelRef) -> list[str]:
        return []

    async def ensure_available(self, model: ModelRef, on_event: Any = None) -> None:
        return None

    async def aclose(self) -> None:
        await self.client.close()


async def measure(
    backends: Backends, ref: ModelRef, messages: list[ChatMessage], calls: int, concurrency: int
) -> tuple[float, float]:
    """(CPU ms per call, calls per second) of ``calls`` calls, ``concurrency`` at once."""
    request = ChatRequest(model=ref, messages=messages, meta=CallMeta(agent="Fisher 1"))
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            result = await backends.chat(request)
            assert result.text.startswith("echo:"), result.text

    await asyncio.gather(*(one() for _ in range(max(20, calls // 10))))  # warm-up
    cpu0, wall0 = cpu_s(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    cpu, wall = cpu_s() - cpu0, time.perf_counter() - wall0
    return cpu / calls * 1000, calls / wall


async def run(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(_env_file=None, openai_api_key=None)  # type: ignore[call-arg]
    ref = ModelRef(
        provider=Provider.openai,
        model="fake-model",
        base_url=base_url,
        params=SamplingParams(temperature=0.7, top_p=0.9, max_tokens=256),
    )
    ours = Backends(settings, limits={"openai": args.concurrency})
    plain = Backends(settings, limits={"openai": args.concurrency})
    plain_backend = openai_backend.OpenAIBackend(settings, plain.limit_for)
    plain._backends[Provider.openai] = plain_backend
    sdk: Backends | None = None
    try:
        sdk_backend = SdkBackend(base_url)
        sdk = Backends(settings, limits={"openai": args.concurrency})
        sdk._backends[Provider.openai] = sdk_backend  # the same routing, limits and retries
    except ImportError:
        print("the openai package is not installed: the SDK path is not measured")
    figures: dict[str, Any] = {}
    for n in HISTORIES:
        messages = history(n)
        rounds: dict[str, list[tuple[float, float]]] = {"ours": [], "httpcore": [], "sdk": []}
        for _ in range(args.repeats):
            rounds["ours"].append(await measure(ours, ref, messages, args.calls, args.concurrency))
            lean = openai_backend.http_client
            openai_backend.http_client = httpcore_client  # type: ignore[assignment]
            try:
                rounds["httpcore"].append(
                    await measure(plain, ref, messages, args.calls, args.concurrency)
                )
            finally:
                openai_backend.http_client = lean  # type: ignore[assignment]
            if sdk is not None:
                rounds["sdk"].append(
                    await measure(sdk, ref, messages, args.calls, args.concurrency)
                )
        row: dict[str, Any] = {
            "cpu_ms_per_call": round(statistics.median(c for c, _ in rounds["ours"]), 3),
            "calls_per_s": round(statistics.median(r for _, r in rounds["ours"]), 1),
            "httpcore_cpu_ms_per_call": round(
                statistics.median(c for c, _ in rounds["httpcore"]), 3
            ),
            "httpcore_calls_per_s": round(statistics.median(r for _, r in rounds["httpcore"]), 1),
            "sdk_cpu_ms_per_call": None,
            "sdk_calls_per_s": None,
        }
        if rounds["sdk"]:
            row["sdk_cpu_ms_per_call"] = round(statistics.median(c for c, _ in rounds["sdk"]), 3)
            row["sdk_calls_per_s"] = round(statistics.median(r for _, r in rounds["sdk"]), 1)
        figures[str(n)] = row
        sdk_text = (
            f"; SDK {row['sdk_cpu_ms_per_call']:.3f} ms ({row['sdk_calls_per_s']:.0f} calls/s)"
            if row["sdk_cpu_ms_per_call"] is not None
            else ""
        )
        print(
            f"{n:>3} messages: {row['cpu_ms_per_call']:.3f} ms CPU per call "
            f"({row['calls_per_s']:.0f} calls/s); on httpcore "
            f"{row['httpcore_cpu_ms_per_call']:.3f} ms{sdk_text}"
        )
    await ours.aclose()
    await plain.aclose()
    if sdk is not None:
        await sdk.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        if not base_url:
            raise SystemExit("the fake server did not start")
        figures = asyncio.run(run(base_url, args))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    worst = max(row["cpu_ms_per_call"] for row in figures.values())
    print(
        json.dumps(
            {
                "histories": figures,
                "calls": args.calls,
                "concurrency": args.concurrency,
                "repeats": args.repeats,
                "target_ms": TARGET_MS,
                "within_target": worst <= TARGET_MS,
                "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
