"""Fuzzing the inputs a researcher types: batch specs, experiment files and settings.

Hypothesis generates them (mostly malformed: wrong types, out-of-range and huge numbers, unknown
fields and formats, mixed with small valid values) and the real CLI entry runs each one,
in-process (and a few in a subprocess). Every example must end with exit code 0 or 2, never a
traceback nor an "Unexpected error", store nothing when refused, and finish within the hang
guard. Valid numbers are drawn from small ranges so that an accepted spec runs in a moment; the
bounds themselves are covered by tests/test_bad_input.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli import main

REPO = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 60.0  # hang guard: an input that keeps the CLI busy this long is a failure
COLLECTIONS = ("experiments", "batches", "conversations", "messages")


def fuzz(examples: int) -> Any:
    """Hypothesis settings of every fuzz test: a fixed budget of examples, no deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same examples on every run: a CI failure can be replayed
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --------------------------------------------------------------------------- strategies

junk = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


def value(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: often valid (small), often anything."""
    return st.one_of(valid, valid, junk)


def small(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=low, max_value=high)


params = st.fixed_dictionaries(
    {},
    optional={
        "temperature": value(st.floats(min_value=0, max_value=2)),
        "top_p": value(st.floats(min_value=0, max_value=1)),
        "top_k": value(small(1, 100)),
        "num_ctx": value(small(256, 8192)),
        "max_tokens": value(small(1, 512)),
        "seed": value(small(0, 2**63 - 1)),
        "tempreature": junk,  # a typo
    },
)
options = st.fixed_dictionaries(
    {},
    optional={
        "latency_ms": value(small(0, 2)),
        "timeout_s": value(st.floats(min_value=1, max_value=60)),
        "max_attempts": value(small(1, 3)),
        "policy": st.one_of(st.integers(), st.just("no-such-policy")),
    },
)
model = st.one_of(
    st.just("dryrun"),
    st.sampled_from(["dryrun:x", "gpt4", "", "ollama:"]),
    st.fixed_dictionaries(
        {"provider": st.sampled_from(["dryrun", "dryrun", "dryrun", "martian", 7])},
        optional={"model": st.text(max_size=4), "params": params, "options": options},
    ),
    junk,
)
batch = st.fixed_dictionaries(
    {},
    optional={
        "total_messages": value(small(1, 3)),
        "days": value(small(1, 2)),
        "every_day_count": value(st.booleans()),
        "max_agents": value(
            st.dictionaries(
                st.sampled_from(["Guard", "Prisoner", "guard", "Warden"]),
                value(small(1, 2)),
                max_size=2,
            )
        ),
        "every_combination": value(st.booleans()),
        "repeats": value(small(1, 2)),
        "seed": value(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        "concurrency": value(small(1, 4)),
        "rounds": value(small(1, 3)),
        "speaker_selection": st.sampled_from(["round_robin", "random", "auto", "manual", "loud"]),
        "factors": st.one_of(st.just("all"), junk),
        "models": st.one_of(model, st.lists(model, max_size=2)),
        "dayz": junk,  # an unknown field
    },
)
EXPERIMENT = {"name": "Fuzz study", "roles": [{"name": "Guard"}, {"name": "Prisoner"}]}
spec = st.fixed_dictionaries(
    {"batch": st.one_of(batch, batch, batch, junk)},
    optional={"prices": junk, "colour": junk},
).map(lambda d: {"experiment": EXPERIMENT, **d})

section = st.fixed_dictionaries(
    {"title": st.text(max_size=5), "content": st.sampled_from(["Be calm.", "<GUARD_NOUN>", ""])},
    optional={"position": value(small(-3, 3)), "kind": st.sampled_from(["private", "odd"])},
)
role = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["Guard", "Prisoner", "A:B", ""]), st.text(max_size=4))},
    optional={"sections": st.lists(section, max_size=2), "gender": st.text(max_size=3)},
)
experiment_body = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("Fuzzed"), st.text(max_size=6)),
        "roles": st.lists(role, max_size=2),
    },
    optional={
        "models": st.lists(model, max_size=2),
        "favourite": value(st.booleans()),
        "kind": st.sampled_from(["dialogue", "poker"]),
        "starting_message": st.text(max_size=8),
    },
)
experiment_file = st.one_of(
    st.fixed_dictionaries(
        {"experiment": experiment_body},
        optional={
            "format": st.one_of(
                st.just("llm-interaction-simulator/experiment"),
                st.just("something/else"),
                junk,
            ),
            "format_version": value(st.just(1)),
            "extra": junk,
        },
    ),
    experiment_body,
    junk,
)

setting_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"),
    min_size=1,
    max_size=10,
)
setting = st.one_of(
    setting_text,
    st.integers(min_value=-(10**6), max_value=10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
environment = st.fixed_dictionaries(
    {},
    optional={
        "MONGODB_TIMEOUT_MS": st.one_of(setting, small(1000, 20000).map(str)),
        "LLM_TIMEOUT_S": setting,
        "LLM_MAX_ATTEMPTS": setting,
        "OPENAI_CONCURRENCY": setting,
        "OLLAMA_CONCURRENCY": setting,
        "LOG_LEVEL": st.one_of(setting, st.sampled_from(["debug", "INFO", "warning"])),
        # only names the database would refuse: a valid one would create a stray database
        "MONGODB_DB": st.sampled_from(["a/b", "x.y", "has space", "$db", "q" * 70, " "]),
        "MONGODB_URI": st.sampled_from(
            ["mongodb+srv://127.0.0.1/", "mongodb://h/?tls=perhaps", "localhost", "mongodb://"]
        ),
    },
)

# --------------------------------------------------------------------------- running


@pytest.fixture
def fuzz_db(mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    name = f"t_fuzz_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "20000")  # a loaded CI machine answers slowly
    for var in ("PRICE_TABLE", "LOG_LEVEL", "DB_CLUSTER_URL", "DB_USER", "DB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def counts(db: Any) -> dict[str, int]:
    return {name: db[name].count_documents({}) for name in COLLECTIONS}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI in a thread, bounded by the hang guard; returns (exit code, stdout + stderr)."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(main(argv))
        except BaseException as exc:  # reported below as the failure it is
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)  # hang guard
    assert not thread.is_alive(), f"hang: {argv} still running after {HANG_GUARD_S:.0f} s"
    out, err = capsys.readouterr()
    (code,) = result
    assert isinstance(code, int), f"{argv} raised {code!r}\n{err}"
    return code, out + err


def check_output(code: int, text: str, what: Any) -> None:
    assert code in (0, 2), f"exit {code} for {what!r}:\n{text}"
    assert "Traceback" not in text, f"a traceback for {what!r}:\n{text}"
    assert "Unexpected error" not in text, f"an unforeseen error for {what!r}:\n{text}"
    if code == 2:
        assert "error: " in text, text


@fuzz(60)
@given(data=spec, as_json=st.booleans(), dry_run=st.booleans())
def test_fuzzed_batch_specs(
    fuzz_db: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: dict[str, Any],
    as_json: bool,
    dry_run: bool,
) -> None:
    path = tmp_path / ("spec.json" if as_json else "spec.yaml")
    text = json.dumps(data) if as_json else yaml.safe_dump(data)
    path.write_text(text, encoding="utf-8")
    before = counts(fuzz_db)
    code, output = run_cli(["run", str(path), "--dry-run" if dry_run else "--yes"], capsys)
    check_output(code, output, data)
    after = counts(fuzz_db)
    if code == 2 or dry_run:
        assert after == before, f"stored something for {data!r}:\n{output}"
    else:
        assert after["batches"] == before["batches"] + 1
        assert fuzz_db.batches.count_documents({"status": {"$ne": "done"}}) == 0, output


@fuzz(40)
@given(data=experiment_file, as_json=st.booleans())
def test_fuzzed_experiment_files(
    fuzz_db: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: Any,
    as_json: bool,
) -> None:
    path = tmp_path / ("study.json" if as_json else "study.yaml")
    path.write_text(json.dumps(data) if as_json else yaml.safe_dump(data), encoding="utf-8")
    before = counts(fuzz_db)
    code, output = run_cli(["experiments", "import", str(path)], capsys)
    check_output(code, output, data)
    after = counts(fuzz_db)
    if code == 2:
        assert after == before, f"stored something for {data!r}:\n{output}"
    else:
        assert after["experiments"] == before["experiments"] + 1


@fuzz(40)
@given(env=environment, in_dotenv=st.booleans())
def test_fuzzed_settings(
    fuzz_db: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    in_dotenv: bool,
) -> None:
    saved = {k: os.environ.get(k) for k in env}
    dotenv = tmp_path / ".env"
    try:
        if in_dotenv:
            for key in env:
                os.environ.pop(key, None)  # the environment wins over .env
            dotenv.write_text(
                "".join(f"{k}={json.dumps(v, ensure_ascii=False)}\n" for k, v in env.items())
            )
        else:
            os.environ.update(env)
        before = counts(fuzz_db)
        code, output = run_cli(["whoami"], capsys)
        check_output(code, output, env)
        assert counts(fuzz_db) == before
    finally:
        dotenv.unlink(missing_ok=True)
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@fuzz(4)
@given(env=environment, data=spec)
def test_fuzzed_inputs_in_a_subprocess(
    fuzz_db: Any, tmp_path: Path, env: dict[str, str], data: dict[str, Any]
) -> None:
    """The same through the ``simulator`` process itself: its exit code and its stderr."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    before = counts(fuzz_db)
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=HANG_GUARD_S,  # hang guard
        check=False,
    )
    check_output(proc.returncode, proc.stdout + proc.stderr, (env, data))
    assert counts(fuzz_db) == before
