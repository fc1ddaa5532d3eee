"""The batch spec file: parsing, and errors that name the offending field's path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.domain import Provider, SpeakerSelection
from simulator.domain.errors import SpecError
from simulator.engine.spec import load_spec, parse_spec
from tests.plugins.batches import make_prison_experiment

INLINE = {
    "name": "Inline prison",
    "roles": [{"name": "Guard"}, {"name": "Prisoner"}],
    "factors": [{"name": "disclose", "levels": ["yes", "no"]}],
}


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_complete_spec_parses_into_a_batch_spec(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
experiment:
  name: Inline prison
  roles: [{name: Guard}, {name: Prisoner}]
  factors:
    - {name: disclose, levels: [yes, no]}
batch:
  models:
    - dryrun
    - default: ollama:llama3
      per_role: {prisoner: "openai:gpt-4o-mini"}
      summarizer: {provider: dryrun, options: {latency_ms: 5}}
  total_messages: 10
  days: 2
  every_day_count: true
  max_agents: {guard: 2, Prisoner: 1}
  every_combination: false
  factors:
    - {disclose: yes}
  speaker_selection: random
  repeats: 3
  seed: 42
  concurrency: 4
prices:
  gpt-4o-mini: {input_per_1k: 0.00015, output_per_1k: 0.0006}
""",
    )
    run = load_spec(path)
    assert run.experiment.definition is not None and run.experiment.source == "inline"
    exp = run.experiment.definition
    # YAML 1.2 booleans: the levels stay the text the researcher typed
    assert exp.factors[0].levels == ["yes", "no"]
    spec = run.batch_spec(exp)
    assert spec.experiment_id == exp.id
    assert spec.max_agents == {"Guard": 2, "Prisoner": 1}
    assert spec.factor_levels == [{"disclose": "yes"}]
    assert spec.speaker_selection == [SpeakerSelection.random]
    assert (spec.total_messages, spec.days, spec.every_day_count, spec.repeats) == (10, 2, True, 3)
    assert (spec.seed, spec.concurrency, spec.every_combination) == (42, 4, False)
    assert len(spec.model_sets) == 2
    second = spec.model_sets[1]
    assert second.default.provider is Provider.ollama and second.default.model == "llama3"
    assert second.per_role["Prisoner"].model == "gpt-4o-mini"
    assert second.summarizer is not None and second.summarizer.options == {"latency_ms": 5}
    assert run.prices == {"gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006}}


def test_defaults_use_the_experiments_first_model() -> None:
    run = parse_spec({"experiment": INLINE})
    exp = run.experiment.definition
    assert exp is not None
    spec = run.batch_spec(exp)
    assert spec.model_sets[0].default == exp.models[0]
    assert (spec.total_messages, spec.days, spec.repeats, spec.factor_levels) == (20, 1, 1, None)


def test_experiment_by_name_or_id() -> None:
    assert parse_spec({"experiment": "Prison"}).experiment.name == "Prison"
    ref = parse_spec({"experiment": {"id": "abc"}}).experiment
    assert (ref.id, ref.name, ref.definition) == ("abc", None, None)


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        (
            {"experiment": "x", "batch": {"max_agents": {"guard": 0}}},
            "batch.max_agents.guard",
            "from 1 to 100",
        ),
        ({"experiment": "x", "batch": {"days": "two"}}, "batch.days", "whole number"),
        ({"experiment": "x", "batch": {"repeats": 0}}, "batch.repeats", "from 1 to 1,000"),
        ({"experiment": "x", "batch": {"dayz": 2}}, "batch.dayz", "unknown field"),
        ({"experiment": "x", "batc": {}}, "batc", "unknown field"),
        ({"experiment": "x", "batch": {"models": ["gpt4"]}}, "batch.models.0", "provider:model"),
        (
            {
                "experiment": "x",
                "batch": {"models": [{"provider": "openai", "model": "m", "temp": 1}]},
            },
            "batch.models.0.temp",
            "unknown field",
        ),
        (
            {"experiment": "x", "batch": {"models": [{"per_role": {"a": "dryrun"}}]}},
            "batch.models.0.default",
            "is required",
        ),
        (
            {
                "experiment": "x",
                "batch": {"models": {"default": "dryrun", "per_role": {"a": "zz:1"}}},
            },
            "batch.models.per_role.a",
            "not a model",
        ),
        (
            {"experiment": "x", "batch": {"speaker_selection": "loudest"}},
            "batch.speaker_selection",
            "one of",
        ),
        (
            {"experiment": "x", "batch": {"speaker_selection": "manual"}},
            "batch.speaker_selection",
            "manual",
        ),
        ({"experiment": "x", "batch": {"days": 5, "total_messages": 3}}, "batch.days", "at most"),
        ({"experiment": "x", "batch": {"factors": "some"}}, "batch.factors", '"all"'),
        (
            {"experiment": "x", "batch": {"factors": [{"goal": ["a"]}]}},
            "batch.factors.0.goal",
            "level",
        ),
        ({"batch": {}}, "experiment", "is required"),
        ({"experiment": {"id": "a", "name": "b"}}, "experiment", "only one"),
        (
            {"experiment": {"name": "E", "roles": [{"name": "A:B"}]}},
            "experiment.roles.0.name",
            "may not contain",
        ),
        (
            {"experiment": "x", "prices": {"m": {"input_per_1k": -1, "output_per_1k": 0}}},
            "prices.m.input_per_1k",
            ">= 0",
        ),
        (
            {"experiment": "x", "prices": {"m": {"input_per_1k": 1}}},
            "prices.m.output_per_1k",
            "required",
        ),
    ],
)
def test_malformed_specs_name_the_offending_field(data: dict, path: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="s.yaml")
    text = str(info.value)
    assert f"{path}: " in text and message in text, text
    assert text.startswith("s.yaml")


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"experiment": "x", "batch": {"days": 0, "repeats": -1, "foo": 1}})
    text = str(info.value)
    assert "3 problems" in text
    for path in ("batch.days", "batch.repeats", "batch.foo"):
        assert path in text


def test_problems_against_the_experiment_name_roles_and_factor_levels() -> None:
    exp = make_prison_experiment(with_goal_factor=True)
    run = parse_spec(
        {
            "experiment": "x",
            "batch": {
                "max_agents": {"Warden": 2},
                "models": [{"default": "dryrun", "per_role": {"Cook": "dryrun"}}],
                "factors": [{"goal": "parole"}, {"mood": "sad"}],
            },
        }
    )
    with pytest.raises(SpecError) as info:
        run.batch_spec(exp)
    text = str(info.value)
    assert "batch.max_agents.Warden: no role 'Warden'" in text
    assert "batch.models.0.per_role.Cook: no role 'Cook'" in text
    assert "batch.factors.0.goal: 'parole' is not a level of 'goal'" in text
    assert "batch.factors.1.mood: no factor 'mood'" in text


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "experiment: x\nbatch:\n  days: [1, 2\n")
    with pytest.raises(SpecError, match=r"line \d+, column \d+: not valid YAML"):
        load_spec(path)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")


def test_json_specs_and_experiment_files_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text(
        "experiment:\n  name: From file\n  roles: [{name: A}]\n", encoding="utf-8"
    )
    path = _write(
        tmp_path,
        json.dumps({"experiment": {"file": "exp.yaml"}, "batch": {"days": 1}}),
        "spec.json",
    )
    run = load_spec(path)
    assert run.experiment.definition is not None
    assert run.experiment.definition.name == "From file"
    assert run.experiment.source.endswith("exp.yaml")
    bad = _write(tmp_path, json.dumps({"experiment": {"file": "nope.yaml"}}), "bad.json")
    with pytest.raises(SpecError, match=r"experiment\.file: .*no such file"):
        load_spec(bad)


def test_the_price_table_file_in_dollars_per_million_tokens(tmp_path: Path) -> None:
    from simulator.engine.spec import load_price_table

    path = _write(
        tmp_path,
        '{"openai:gpt-4o-mini": {"input": 0.15, "output": 0.60}, "m": {"input_per_1k": 1, '
        '"output_per_1k": 2}}',
        "prices.json",
    )
    table = load_price_table(path)
    assert table["openai:gpt-4o-mini"] == pytest.approx(
        {"input_per_1k": 0.00015, "output_per_1k": 0.0006}
    )
    assert table["m"] == {"input_per_1k": 1.0, "output_per_1k": 2.0}
    bad = _write(tmp_path, "m: {input: 1}\n", "bad.yaml")
    with pytest.raises(SpecError, match=r"PRICE_TABLE\.m\.output_per_1k: is required"):
        load_price_table(bad)
