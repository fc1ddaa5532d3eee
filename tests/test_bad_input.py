"""Bad input gets one readable message naming what is wrong and where (and the accepted range),
exit code 2, no traceback, and nothing stored: settings, URIs, batch specs, experiment files.

Each case runs the real CLI entry (``simulator.cli.main``) in-process, against the session's
embedded server.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pymongo
import pytest

from simulator.cli import main
from simulator.domain.models import BOUNDS, MAX_CELLS


@pytest.fixture
def env(mongo_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A fresh database the CLI uses, read back with a sync client; no stray .env."""
    name = f"t_bad_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.setenv("SIMULATOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("SIMULATOR_CONFIG_DIR", str(tmp_path / "config"))
    for var in ("PRICE_TABLE", "LOG_LEVEL", "MONGODB_TIMEOUT_MS", "DB_CLUSTER_URL", "DB_USER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI; it must exit 2 with one readable error and no traceback. Returns stderr."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "Unexpected error" not in err
    return err


def nothing_stored(db: Any) -> None:
    for name in ("experiments", "batches", "conversations", "messages"):
        assert db[name].count_documents({}) == 0, name


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MONGODB_TIMEOUT_MS", "abc", "MONGODB_TIMEOUT_MS='abc': not a whole number"),
        ("MONGODB_TIMEOUT_MS", "-1", "from 100 to 600,000 (milliseconds)"),
        ("LLM_TIMEOUT_S", "abc", "LLM_TIMEOUT_S='abc': not a number"),
        ("LLM_TIMEOUT_S", "inf", "from 0.1 to 3,600 (seconds)"),
        ("LLM_MAX_ATTEMPTS", "0", "LLM_MAX_ATTEMPTS='0': out of range"),
        ("OPENAI_CONCURRENCY", "0", "from 1 to 1,024"),
        ("OLLAMA_CONCURRENCY", "1e3", "OLLAMA_CONCURRENCY='1e3': not a whole number"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD': not a log level; accepted: DEBUG, INFO"),
        ("MONGODB_DB", "a/b", "MONGODB_DB='a/b': a database name may not contain '/'"),
        ("MONGODB_DB", "x" * 70, "longer than 63 bytes"),
        ("OLLAMA_HOST", "::::", "OLLAMA_HOST='::::': not a URL"),
        ("OPENAI_BASE_URL", "notaurl", "OPENAI_BASE_URL='notaurl': must start with http://"),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_bad_setting_is_one_line_naming_the_variable_and_the_range(
    env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
    where: str,
) -> None:
    if where == "environment":
        monkeypatch.setenv(variable, value)
    else:
        monkeypatch.delenv(variable, raising=False)
        (tmp_path / ".env").write_text(f"{variable}={value}\n", encoding="utf-8")
    err = refused(["batches"], capsys)
    assert "error: Invalid setting: " in err and expected in err, err
    assert len(err.strip().splitlines()) == 1


def test_the_tui_start_refuses_a_bad_setting_the_same_way(
    env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_MAX_ATTEMPTS", "0")
    err = refused(["tui"], capsys)
    assert "LLM_MAX_ATTEMPTS='0'" in err


def test_a_data_directory_that_cannot_be_one_is_named(
    env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MONGODB_URI")  # the embedded server, whose files would go there
    monkeypatch.setenv("SIMULATOR_DATA_DIR", "/dev/null/data")
    err = refused(["batches"], capsys)
    assert "Set SIMULATOR_DATA_DIR to a writable directory" in err


def test_a_dotenv_that_is_not_utf8_is_named(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_bytes("MONGODB_DB=caf\xe9\n".encode("latin-1"))
    err = refused(["whoami"], capsys)
    assert "error: Unreadable .env:" in err and "not UTF-8" in err and "0xe9" in err


@pytest.mark.parametrize(
    ("uri", "topic"),
    [
        ("mongodb+srv://127.0.0.1/", "SRV: mongodb+srv:// needs a DNS host name"),
        ("mongodb+srv://cluster0.example.net:27017/", "SRV"),
        ("mongodb://127.0.0.1:1/?tls=perhaps", "TLS option"),
        ("mongodb://127.0.0.1:1/?tlsCAFile=/no/such/ca.pem&tls=true", "TLS option"),
        ("mongodb://u:p@127.0.0.1:1/?authMechanism=FOO", "authentication option"),
        ("mongodb://127.0.0.1:99999/", "invalid URI"),
        ("localhost:27017", "must start with mongodb:// or mongodb+srv://"),
    ],
)
def test_uri_problems_are_named_not_reported_as_unreachable(
    env: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uri: str,
    topic: str,
) -> None:
    monkeypatch.setenv("MONGODB_URI", uri)
    err = refused(["batches"], capsys)
    assert "MONGODB_URI" in err and topic in err, err
    assert "Cannot reach" not in err


def test_a_uri_user_without_a_password_is_an_authentication_option_problem(
    env: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://alice@127.0.0.1:1/")
    err = refused(["batches"], capsys)
    assert "authentication option" in err and "A password is required" in err


# --------------------------------------------------------------------------- batch specs


def spec_file(tmp_path: Path, batch: str, *, suffix: str = ".yaml") -> str:
    path = tmp_path / f"spec{suffix}"
    if suffix == ".json":
        path.write_text(batch, encoding="utf-8")
    else:
        path.write_text(f"experiment: {{example: prison_study}}\nbatch:\n{batch}", "utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ("  total_messages: true\n", "batch.total_messages: must be a whole number from 1"),
        ("  total_messages: 1000000000000\n", "from 1 to 10,000, not 1000000000000"),
        ("  every_day_count: 1\n", "batch.every_day_count: must be true or false, not 1"),
        ("  every_combination: 'yes'\n", "batch.every_combination: must be true or false"),
        ("  repeats: 1e9\n", "batch.repeats: must be a whole number from 1 to 1,000"),
        ("  days: 2.0\n", "batch.days: must be a whole number from 1 to 365, not 2.0"),
        (
            "  max_agents: {Guard: 3000, Prisoner: 3000}\n",
            "batch.max_agents.Guard: must be a whole",
        ),
        ("  max_agents: {Guard: 100000.0}\n", "from 1 to 100, not 100000.0"),
        ("  concurrency: 0\n", "batch.concurrency: must be a whole number from 1 to 1,000"),
        ("  seed: 10000000000000000000000000000000000000000\n", "batch.seed: must be a whole"),
        (
            "  models: [{provider: dryrun, options: {latency_ms: abc}}]\n",
            "batch.models.0.options: latency_ms must be a number from 0 to 600,000, not 'abc'",
        ),
        (
            "  models: [{provider: dryrun, options: {latency_ms: -5}}]\n",
            "latency_ms must be a number from 0 to 600,000, not -5",
        ),
        (
            "  models: [{provider: dryrun, params: {num_ctx: 2000000}}]\n",
            "batch.models.0.params.num_ctx: must be a whole number from 256 to 1,048,576",
        ),
        (
            "  models: [{provider: dryrun, params: {seed: 100000000000000000000000}}]\n",
            "batch.models.0.params.seed: must be a whole number",
        ),
        (
            "  models: [{provider: dryrun, params: {max_tokens: true}}]\n",
            "batch.models.0.params.max_tokens: must be a whole number from 1 to 1,048,576",
        ),
        (
            "  models: [{provider: dryrun, options: {max_attempts: 2.5}}]\n",
            "max_attempts must be a whole number from 1 to 20, not 2.5",
        ),
        (
            "  models: [{provider: openai, model: m, base_url: 'ftp://x'}]\n",
            "batch.models.0: base_url 'ftp://x': must start with http:// or https://",
        ),
        ("  seed: " + "9" * 5000 + "\n", "it holds a number with thousands of digits"),
        ("  factors: " + "[" * 5000 + "]" * 5000 + "\n", "it is nested too deeply"),
        # 10 factor combinations x 100 x 100 agent counts: counted, never expanded
        (
            "  max_agents: {Guard: 100, Prisoner: 100}\n",
            f"100,000 conversations (1 model set x 10 factor combinations x 10,000 agent "
            f"counts x 1 day count x 1 repeat): at most {MAX_CELLS:,} in one batch",
        ),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_spec_names_the_field_and_the_bound_and_stores_nothing(
    env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    batch: str,
    expected: str,
    dry_run: bool,
) -> None:
    argv = ["run", spec_file(tmp_path, batch), "--dry-run" if dry_run else "--yes"]
    err = refused(argv, capsys)
    assert "error: Invalid specification:" in err and expected in err, err
    nothing_stored(env)


def test_a_json_spec_with_a_float_count_is_refused_with_the_bound(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {"experiment": {"example": "prison_study"}, "batch": {"repeats": 1e9}}
    err = refused(["run", spec_file(tmp_path, json.dumps(data), suffix=".json"), "--yes"], capsys)
    assert "batch.repeats: must be a whole number from 1 to 1,000, not 1000000000.0" in err
    nothing_stored(env)


@pytest.mark.parametrize("name", ["/dev/zero", "."])
def test_a_spec_that_is_not_a_regular_file_is_refused(
    env: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    err = refused(["run", name, "--dry-run"], capsys)
    assert "give a YAML or JSON file" in err


def test_a_batch_refused_by_its_model_check_is_not_stored(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    spec = spec_file(
        tmp_path,
        f"  models: [{{provider: ollama, model: llama3, base_url: 'http://127.0.0.1:{port}'}}]\n",
    )
    err = refused(["run", spec, "--yes"], capsys)
    assert "Ollama is not running" in err
    nothing_stored(env)  # neither a failed batch nor the spec's experiment


# --------------------------------------------------------------------------- experiment files


@pytest.mark.parametrize(
    ("wrapper", "expected"),
    [
        ({"format": "something/else"}, "format: 'something/else' is not an experiment file"),
        ({"format_version": 99}, "format_version: 99: written by a newer version"),
        ({"format_version": "1"}, "format_version: must be a whole number"),
        ({"colour": "red"}, "colour: unknown field"),
    ],
)
def test_an_experiment_file_of_an_unknown_format_is_refused(
    env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    wrapper: dict[str, Any],
    expected: str,
) -> None:
    body = {"name": "Imported", "roles": [{"name": "Guard"}, {"name": "Prisoner"}]}
    data = {"format": "llm-interaction-simulator/experiment", "experiment": body, **wrapper}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    err = refused(["experiments", "import", str(path)], capsys)
    assert expected in err, err
    nothing_stored(env)
    # the same file as a spec's experiment is refused the same way
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"experiment: {{file: {path.name}}}\n", encoding="utf-8")
    assert expected in refused(["run", str(spec), "--dry-run"], capsys)


def test_an_experiment_file_with_a_text_position_is_refused(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = {"title": "Rules", "content": "x", "position": "3"}
    body = {"name": "E", "roles": [{"name": "Guard", "sections": [section]}]}
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps({"experiment": body}), encoding="utf-8")
    err = refused(["experiments", "import", str(path)], capsys)
    assert "experiment.roles.0.sections.0.position: must be a whole number" in err
    nothing_stored(env)


def test_the_bounds_table_of_the_docs_is_the_code_s() -> None:
    """docs/spec.md lists every bound of domain.models.BOUNDS, as the code has it."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "spec.md").read_text()
    for name, (low, high) in BOUNDS.items():
        assert f"| `{name}` | {low:,} | {high:,} |" in text, name
    assert f"{MAX_CELLS:,}" in text
