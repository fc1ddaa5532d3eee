"""Paying for each answer once: prompt-cache share, free reruns, and estimates that learn.

On a fresh embedded server in a temporary directory, with the prison study example
(``simulator/examples/prison_study.yaml``, one goal and persona, 1v1 to 2v2, 2 days):

1. **prompt caches**: a batch against a local OpenAI-compatible server that caches prompt
   prefixes and reports the cached tokens (``tests/servers/prefix_cache_server.py``, in this
   process, in a thread), each conversation sending its ``prompt_cache_key``: the share of prompt
   tokens the server served from its cache, as the ledger sums them;
2. **a free rerun**: that batch ran with ``cache: reuse``; a rerun of it (a new batch from its
   spec) counts the calls that reach the server (0) and the answers served from the cache;
3. **estimates**: the dryrun estimate's error against what the batch stored (calls and tokens),
   and on the local server the error of the closed-form estimate before and after it learnt from
   the first batch's ledger (answers of 60 words, where the closed form assumes 150 tokens).

    python benchmarks/cache.py [--messages 12] [--repeats 2]

The last line is one JSON object: ``cached_share``, ``rerun_calls``, ``rerun_hits``,
``rerun_answers``, ``dryrun_estimate_error`` (calls and tokens), ``static_estimate_error`` and
``learned_estimate_error`` (tokens), with the load average. Targets (issue 28): a rerun makes 0
calls; the dryrun estimate within 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.db.embedded import EmbeddedServer  # noqa: E402
from simulator.db.mongo import connect_store  # noqa: E402
from simulator.domain import (  # noqa: E402
    BatchSpec,
    CacheMode,
    Experiment,
    ModelRef,
    ModelSet,
    Provider,
    SamplingParams,
)
from simulator.engine.batch import BatchRunner  # noqa: E402
from simulator.engine.grid import estimate_cells, expand_grid  # noqa: E402
from simulator.llm.registry import Backends  # noqa: E402
from simulator.scenarios.registry import install  # noqa: E402
from simulator.services.files import read_experiment  # noqa: E402
from simulator.settings import Settings  # noqa: E402
from tests.servers.prefix_cache_server import PrefixCacheServer  # noqa: E402

EXAMPLE = ROOT / "simulator" / "examples" / "prison_study.yaml"
LEVELS = [{"goal": "Escape", "persona": "No persona"}]
REPLY = " ".join(["word"] * 60)

install()  # the experiment kinds, as the composition root (AppRoot) installs them for a command


def settings() -> Settings:
    return Settings(_env_file=None, openai_api_key=None)  # type: ignore[call-arg]


def spec(exp: Experiment, ref: ModelRef, args: argparse.Namespace, cache: CacheMode) -> BatchSpec:
    return BatchSpec(
        experiment_id=exp.id,
        model_sets=[ModelSet(default=ref)],
        total_messages=args.messages,
        days=2,
        max_agents={r.name: 2 for r in exp.roles},
        factor_levels=LEVELS,
        repeats=args.repeats,
        seed=11,
        cache=cache,
    )


def error(estimated: float, actual: float) -> float:
    return round(abs(estimated - actual) / actual, 4) if actual else 0.0


async def run(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    exp = await store.experiments.create(read_experiment(EXAMPLE))
    out: dict[str, Any] = {}
    backends = Backends(settings())
    runner = BatchRunner(store, backends)
    try:
        # dryrun: the closed-form estimate against what the batch stored
        dry = spec(exp, ModelRef(), args, CacheMode.off)
        batch = await runner.run((await runner.start(exp, dry)).id)
        ledger = await store.ledgers.get(batch.id)
        assert batch.estimate is not None and ledger is not None
        out["dryrun_estimate_error"] = {
            "calls": error(batch.estimate.llm_calls, ledger.calls),
            "tokens": error(batch.estimate.tokens, ledger.tokens),
        }
        print(
            f"dryrun: estimate {batch.estimate.llm_calls:,} calls, {batch.estimate.tokens:,} "
            f"tokens; stored {ledger.calls:,} calls, {ledger.tokens:,} tokens"
        )

        with PrefixCacheServer(reply=lambda body: REPLY) as server:
            ref = ModelRef(
                provider=Provider.openai,
                model="fake-model",
                base_url=server.base_url,
                params=SamplingParams(temperature=0.5, max_tokens=None),
                options={"prompt_cache_key": True},
            )
            first_spec = spec(exp, ref, args, CacheMode.reuse)
            static = estimate_cells(exp, expand_grid(exp, first_spec))
            first = await runner.run((await runner.start(exp, first_spec)).id)
            ledger = await store.ledgers.get(first.id)
            assert ledger is not None
            out["cached_share"] = round(ledger.cached_share or 0.0, 4)
            out["static_estimate_error"] = error(static.tokens, ledger.tokens)
            print(
                f"local server: {ledger.calls:,} calls, {ledger.prompt_tokens:,} prompt tokens, "
                f"{ledger.cached_tokens:,} from its prompt cache ({out['cached_share']:.0%})"
            )
            calls_before = len(server.chat_bodies())
            rerun = await runner.run((await runner.start(exp, first_spec)).id)
            rerun_ledger = await store.ledgers.get(rerun.id)
            assert rerun_ledger is not None
            out["rerun_calls"] = len(server.chat_bodies()) - calls_before
            out["rerun_hits"] = rerun_ledger.cache_hits
            out["rerun_answers"] = rerun_ledger.calls + rerun_ledger.cache_hits
            print(
                f"rerun: {out['rerun_calls']} calls reached the server, {out['rerun_hits']:,} "
                "answers from the cache"
            )
            # a new batch (cache off): its estimate learnt from the batches before
            learnt_spec = spec(exp, ref, args, CacheMode.off)
            learnt = await runner.run((await runner.start(exp, learnt_spec)).id)
            learnt_ledger = await store.ledgers.get(learnt.id)
            assert learnt.estimate is not None and learnt_ledger is not None
            out["learned_estimate_error"] = error(learnt.estimate.tokens, learnt_ledger.tokens)
            out["learned_from_calls"] = learnt.estimate.measured_calls
            print(
                f"estimate on the local server: closed form {static.tokens:,} tokens, learnt "
                f"{learnt.estimate.tokens:,}; stored {learnt_ledger.tokens:,}"
            )
    finally:
        await backends.aclose()
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        server = EmbeddedServer(Path(tmp))
        uri = await asyncio.to_thread(server.start)
        store = await connect_store(uri, "cache_bench")
        try:
            return await run(store, args)
        finally:
            await store.close()
            await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    arguments = parser.parse_args()
    load = os.getloadavg()[0]
    figures = asyncio.run(main(arguments))
    figures["load_avg_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(figures))
