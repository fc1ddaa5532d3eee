"""The tables a researcher publishes from tell the truth: a grid cell is its whole design (model
parameters included), a role a conversation does not have is missing (not 0), dtypes never depend
on the selection, empty texts are missing values, summaries' ``turn`` is what the docs say, the
dryrun model has one name, users' numbers count from 1 everywhere, and a filter that matches
nothing says which filter and what it could have been."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from simulator.analysis import exports
from simulator.analysis import metrics as m
from simulator.analysis.catalog import TABLES
from simulator.analysis.loading import (
    NoMatchError,
    load_all,
    load_conversations,
)
from simulator.cli import main
from simulator.db.store import ConversationFilter
from simulator.domain import (
    BatchSpec,
    Experiment,
    GridCell,
    ModelRef,
    ModelSet,
    Role,
    SamplingParams,
    Section,
    SpeakerSelection,
    Status,
)
from simulator.domain.cells import cell_key, cell_label
from simulator.engine.batch import BatchRunner
from simulator.engine.conversation import run_conversation
from simulator.engine.spec import load_example
from simulator.llm.registry import Backends
from simulator.scenarios.commons.setup import commons_cell, commons_experiment, start_run
from tests.plugins.batches import make_prison_experiment
from tests.plugins.commons import saboteur_params

DOC = Path(__file__).resolve().parents[1] / "docs" / "analysis.md"
NULLABLE = {"string", "Int64", "Float64", "boolean", "datetime64[ns, UTC]"}


def dryrun(temperature: float = 0.7, **params: Any) -> ModelSet:
    ref = ModelRef(
        provider="dryrun", model="dryrun", params=SamplingParams(temperature=temperature, **params)
    )
    return ModelSet(default=ref)


async def run_batch(store: Any, exp: Experiment, **fields: Any) -> str:
    exp = await store.experiments.get(exp.id) or await store.experiments.create(exp)
    spec = BatchSpec(experiment_id=exp.id, **{"model_sets": [dryrun()], **fields})
    runner = BatchRunner(store, Backends(max_attempts=1, backoff_s=0.0), poll_s=0.05)
    batch = await runner.start(exp, spec, owner="ada")
    await runner.run(batch.id)
    return batch.id


# --------------------------------------------------------------------------- the cell key


def test_a_cells_key_is_its_whole_design_and_only_that() -> None:
    base = GridCell(
        counts={"Guard": 1, "Prisoner": 2},
        days=2,
        total_messages=20,
        models=dryrun(0.7),
        factors={"goal": "Escape", "persona": "Calm"},
    )
    key = cell_key(base)
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    # repeats of a cell (another repeat, another seed) share its key
    assert cell_key(base.model_copy(update={"repeat": 3, "seed": 99})) == key
    # the same design written differently is the same cell
    same = base.model_copy(
        update={
            "counts": {"Prisoner": 2, "Guard": 1},
            "factors": {"persona": "Calm", "goal": "Escape"},
            "models": ModelSet(
                default=base.models.default,
                per_role={"Guard": base.models.default},
                summarizer=base.models.default,
            ),
        }
    )
    assert cell_key(same) == key
    old_name = ModelSet(default=ModelRef(provider="dryrun", model="script"))
    assert cell_key(base.model_copy(update={"models": old_name})) == key
    # anything else of the design is another cell, each sampling parameter included
    others = [
        {"models": dryrun(1.0)},
        {"models": dryrun(0.7, top_p=0.5)},
        {"models": dryrun(0.7, seed=1)},
        {"models": ModelSet(default=ModelRef(provider="ollama", model="llama3.1:8b"))},
        {"models": ModelSet(default=base.models.default, summarizer=dryrun(0.1).default)},
        {"counts": {"Guard": 2, "Prisoner": 2}},
        {"days": 1},
        {"total_messages": 21},
        {"factors": {"goal": "Yard", "persona": "Calm"}},
        {"speaker_selection": SpeakerSelection.random},
        {"rounds": 3},
    ]
    keys = {cell_key(base.model_copy(update=o)) for o in others}
    assert key not in keys and len(keys) == len(others)
    labels = {cell_label(base.model_copy(update=o)) for o in others[:-1]}
    assert cell_label(base) not in labels and len(labels) == len(others) - 1
    assert cell_label(base.model_copy(update={"models": dryrun(1.0)})).endswith(
        "dryrun (temperature=1.0)"
    )


async def test_model_sets_that_differ_only_in_temperature_are_different_cells(
    store: Any,
) -> None:
    exp = make_prison_experiment(with_goal_factor=True)
    temperatures = [0.2, 0.5, 0.8, 1.1]
    batch = await run_batch(
        store,
        exp,
        model_sets=[dryrun(t) for t in temperatures],
        max_agents={"Guard": 2},
        total_messages=2,
        repeats=2,
    )
    conversations, messages = await load_all(store, batch_id=batch)
    assert len(conversations) == 32  # 4 model sets x 2 goals x 2 counts x 2 repeats
    metrics = m.conversation_metrics(messages, conversations)
    cells = m.cell_metrics(metrics)
    assert len(cells) == 16 and cells["conversations"].tolist() == [2] * 16
    assert cells["cell_key"].is_unique and cells["cell"].is_unique
    per_cell = metrics.groupby("cell_key")["repeat"].agg(sorted)
    assert per_cell.tolist() == [[1, 2]] * 16  # each cell: its two repeats, nothing else
    for t in temperatures:
        assert (cells["cell_models"] == f"dryrun (temperature={t})").sum() == 4
    # the figures draw one bar per cell, not per pooled label
    shares = m.share_by_cell(messages)
    assert shares.groupby(["batch_id", "cell_key"]).ngroups == 16
    assert len(shares) == 16 * 2  # Guard and Prisoner in every cell


# --------------------------------------------------------------------------- a mixed export


def watch_experiment() -> Experiment:
    """A dialogue study with a Monitor role next to guards and prisoners."""
    return make_prison_experiment(
        name="Watch study",
        roles=[
            Role(name="Guard", sections=[Section(title="You", content="You are a guard.")]),
            Role(name="Prisoner", sections=[Section(title="You", content="You are a prisoner.")]),
            Role(name="Monitor", sections=[Section(title="You", content="You watch them.")]),
        ],
    )


@pytest.fixture
async def mixed(store: Any, backends: Any) -> dict[str, Any]:
    """The shipped prison study, a study with a Monitor role, and a commons game whose monitors
    speak as role ``monitor`` without a count of their own: one database, one export."""
    prison = load_example("prison_study")
    prison_batch = await run_batch(
        store,
        prison,
        total_messages=4,
        days=2,
        factor_levels=[{"goal": "Escape", "persona": "No persona"}],
        max_agents={"Prisoner": 2},
    )
    watch_batch = await run_batch(store, watch_experiment(), total_messages=3)
    game = commons_experiment(saboteur_params(rounds=1))
    conv = await start_run(store, game, commons_cell(3))
    done = await run_conversation(store, backends, conv.id)
    assert done.status is Status.done, done.error
    return {"prison": prison_batch, "watch": watch_batch, "commons": conv.id}


async def test_a_mixed_export_is_whole_typed_and_honest(
    store: Any, mixed: dict[str, Any], tmp_path: Path
) -> None:
    conversations, messages = await load_all(store)
    tables = {what: exports.table(what, conversations, messages) for what in TABLES}
    metrics = tables["metrics"]
    prison = metrics["batch_id"] == mixed["prison"]
    watch = metrics["batch_id"] == mixed["watch"]
    game = metrics["conversation_id"] == mixed["commons"]
    assert prison.sum() == 2 and watch.sum() == 1 and game.sum() == 1

    # a role a conversation does not have is missing, never 0; a role it has is counted
    for col in ("messages_monitor", "words_monitor", "tokens_monitor", "turn_share_monitor"):
        assert metrics.loc[prison, col].isna().all(), col
    assert (metrics.loc[watch, "messages_monitor"] == 1).all()  # 3 messages, 3 agents
    assert (metrics.loc[game, "messages_monitor"] > 0).all()
    assert metrics.loc[game, "messages_guard"].isna().all()
    assert metrics.loc[prison | watch, "messages_member"].isna().all()
    assert (
        (metrics.loc[prison, "messages_guard"] + metrics.loc[prison, "messages_prisoner"])
        .eq(metrics.loc[prison, "messages"])
        .all()
    )

    # the same without the study that has a Monitor role: the game's monitors speak as role
    # "monitor" without a count of their own, and the prison conversations still have no monitor
    ids = metrics.loc[prison | game, "conversation_id"].tolist()
    some_conversations, some_messages = await load_all(store, conversation_ids=ids)
    some = m.conversation_metrics(some_messages, some_conversations)
    assert "count_monitor" not in some.columns
    assert some.loc[some["batch_id"] == mixed["prison"], "messages_monitor"].isna().all()
    assert (some.loc[some["batch_id"].isna(), "messages_monitor"] > 0).all()

    # integrity: one row per conversation, every message of a listed conversation, sums agree
    assert metrics["conversation_id"].is_unique
    assert metrics["conversation_id"].tolist() == conversations["conversation_id"].tolist()
    assert set(messages["conversation_id"]) == set(conversations["conversation_id"])
    agent = messages[messages["kind"].isin(["utterance", "action"])]
    counted = agent.groupby("conversation_id").size()
    assert metrics.set_index("conversation_id")["messages"].eq(counted).all()
    roles = tables["roles"]
    assert roles.groupby("conversation_id")["messages"].sum().eq(counted).all()
    assert tables["cells"]["conversations"].sum() == len(conversations)
    assert tables["summaries"]["kind"].eq("summary").all()

    for what, frame in tables.items():
        # nullable dtypes only, the declared ones; no empty strings (they are missing values)
        assert set(map(str, frame.dtypes)) <= NULLABLE, (what, dict(frame.dtypes))
        for col in frame.columns[frame.dtypes.astype(str) == "string"]:
            assert not frame[col].eq("").any(), (what, col)
        assert "flags" not in frame.columns, what  # a pandas attribute: message_flags
        # Parquet gives the same frame back
        [path] = await exports.export(
            store, fmt="parquet", what=what, output=tmp_path / f"{what}.parquet"
        )
        pd.testing.assert_frame_equal(pd.read_parquet(path), frame, obj=what)


async def test_dtypes_never_depend_on_the_selection(store: Any, mixed: dict[str, Any]) -> None:
    selections = [
        ConversationFilter(),
        ConversationFilter(batch_id=mixed["prison"]),
        ConversationFilter(batch_id=mixed["watch"]),
        ConversationFilter(conversation_ids=[mixed["commons"]]),
        ConversationFilter(batch_id=mixed["prison"], kinds=["summary"]),
    ]
    seen: dict[str, dict[str, str]] = {}
    for flt in selections:
        conversations, messages = await load_all(store, flt)
        for what in TABLES:
            frame = exports.table(what, conversations, messages)
            for col, dtype in frame.dtypes.astype(str).items():
                assert seen.setdefault(what, {}).setdefault(col, dtype) == dtype, (what, col, flt)
    assert seen["metrics"]["messages_guard"] == "Int64"
    assert seen["metrics"]["turn_share_monitor"] == "Float64"
    assert seen["cells"]["messages_mean"] == "Float64"
    assert seen["cells"]["total_tokens_sum"] == "Int64"


# --------------------------------------------------------------------------- messages' columns


async def test_summaries_turn_is_what_the_docs_say(store: Any) -> None:
    batch = await run_batch(
        store, make_prison_experiment(), total_messages=5, days=2, max_agents={"Guard": 2}
    )
    _, messages = await load_all(store, batch_id=batch)
    for _, group in messages.groupby(["conversation_id", "day"]):
        agent = group[group["kind"] == "utterance"]
        summary = group[group["kind"] == "summary"]
        kickoff = group[group["kind"] == "kickoff"]
        assert kickoff["turn"].tolist() == [0]
        assert agent["turn"].tolist() == list(range(1, len(agent) + 1))
        assert summary["turn"].tolist() == [len(agent) + 1]  # right after the day's last turn
    doc = DOC.read_text(encoding="utf-8")
    assert (
        "0 for the day's kickoff, 1 to N for the agent turns, then N + 1 for the end-of-day" in doc
    )
    assert "`turn` | Int64 | agent turn within the day (0 for the kickoff and summaries)" not in doc


async def test_empty_texts_are_missing_and_flags_have_their_own_name(store: Any) -> None:
    batch = await run_batch(store, make_prison_experiment(), total_messages=2)
    conversations, messages = await load_all(store, batch_id=batch)
    assert "message_flags" in messages.columns and "flags" not in messages.columns
    assert isinstance(messages.flags, pd.core.flags.Flags)  # pandas' own attribute, untouched
    assert messages["message_flags"].isna().all()  # no flag: missing, not ""
    assert messages["dropped_params"].isna().all()
    assert conversations["error"].isna().all()
    path = DOC.read_text(encoding="utf-8")
    assert "| `message_flags` | string |" in path and "| `flags` |" not in path


# --------------------------------------------------------------------------- one name for dryrun


async def test_the_dryrun_model_is_named_dryrun_and_script_is_read_as_it(
    store: Any, tmp_path: Path, mongo_uri: str, tmp_data_dir: Path, monkeypatch
) -> None:
    assert ModelRef(provider="dryrun", model="script").model == "dryrun"
    assert ModelRef(provider="ollama", model="script").model == "script"  # a real model's name
    assert "dryrun" in await Backends().list_models(ModelRef())
    assert "script" not in await Backends().list_models(ModelRef())
    from simulator.scenarios.commons.setup import scripted_model
    from simulator.scenarios.reputation import scripted_population

    assert scripted_model("commons.honest").model == "dryrun"
    assert {m.model for m in scripted_population({"always_defect": 1}).models.values()} == {
        "dryrun"
    }
    # an old spec naming it "script" runs, and what is stored and shown is "dryrun"
    spec = tmp_path / "old.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        "  models: [{default: {provider: dryrun, model: script}, summarizer: dryrun:script}]\n"
        "  total_messages: 2\n"
        "  factors: [{goal: Escape, persona: No persona}]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    assert await asyncio.to_thread(main, ["run", str(spec), "--yes"]) == 0
    [conv] = await store.conversations.list(ConversationFilter())
    assert conv.cell.models.default.model == "dryrun"
    assert conv.cell.models.summarizer is not None
    assert conv.cell.models.summarizer.model == "dryrun"
    raw = await store.db["conversations"].find_one({"_id": conv.id})
    assert raw["cell"]["models"]["default"]["model"] == "dryrun"
    frame = (await load_all(store))[1]
    assert set(frame["model"].dropna()) == {"dryrun"}
    # a conversation stored before the rename reads back under the new name
    await store.db["conversations"].update_one(
        {"_id": conv.id}, {"$set": {"cell.models.default.model": "script"}}
    )
    assert (await store.conversations.get(conv.id)).cell.models.default.model == "dryrun"  # type: ignore[union-attr]


def test_no_code_names_the_dryrun_model_script() -> None:
    """Nowhere in the code is it called "script" but in the alias itself."""
    root = Path(__file__).resolve().parents[1] / "simulator"
    named = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if re.search(r"""model\s*[=:]\s*["']script["']""", p.read_text(encoding="utf-8"))
    ]
    assert named == []


# --------------------------------------------------------------------------- users' numbers


async def test_conversations_and_repeats_are_numbered_from_one_everywhere(
    store: Any, mongo_uri: str, tmp_data_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from simulator.tui.screens.browser import conversation_details

    spec = tmp_path / "numbers.yaml"
    spec.write_text(
        "experiment: {example: prison_study}\n"
        "batch:\n"
        "  models: [{default: {provider: dryrun, model: dryrun}}]\n"
        "  total_messages: 2\n"
        "  repeats: 2\n"
        "  concurrency: 1\n"
        "  factors: [{goal: Escape, persona: No persona}]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    assert await asyncio.to_thread(main, ["run", str(spec), "--yes"]) == 0
    printed = capsys.readouterr().out
    shown = {int(n): line for n, line in re.findall(r"done\s+#(\d+) (.*)", printed)}
    assert sorted(shown) == [1, 2]
    assert "repeat" not in shown[1] and shown[2].endswith("repeat 2")
    conversations = await load_conversations(store)
    assert conversations["conversation_number"].tolist() == [1, 2]
    assert conversations["repeat"].tolist() == [1, 2]  # "repeat 2" is repeat 2 in the tables
    convs = await store.conversations.list(ConversationFilter())
    second = next(c for c in convs if c.cell_index == 1)
    exp = await store.experiments.get(second.experiment_id)
    details = conversation_details(second, exp).plain  # type: ignore[arg-type]
    assert details.startswith("Conversation #2") and "repeat: 2" in details
    md = exports.markdown_transcript(
        conversations.iloc[1], (await load_all(store, conversation_ids=[second.id]))[1]
    )
    assert md.startswith("# Prison study · #2") and "Repeat / seed**: 2 /" in md


# --------------------------------------------------------------------------- filters


async def test_a_filter_that_matches_nothing_says_which_and_what_it_could_be(
    store: Any, mongo_uri: str, tmp_data_dir: Path, monkeypatch, capsys
) -> None:
    prison = load_example("prison_study")
    calm = {"goal": "Escape", "persona": "No persona"}
    rough = {"goal": "Escape", "persona": "Abusive guard, peaceful prisoner"}
    first = await run_batch(store, prison, total_messages=2, factor_levels=[calm])
    await run_batch(store, prison, total_messages=2, days=2, factor_levels=[rough])
    with pytest.raises(NoMatchError) as caught:
        await load_conversations(store, factors={"gaol": "Escape"})
    err = caught.value
    assert err.filters == ["factor"]
    assert "factor gaol=Escape matches no conversation (no study factor 'gaol'" in str(err)
    assert err.valid["factor"] == [
        "goal = Escape",
        "persona = Abusive guard, peaceful prisoner | No persona",
    ]
    with pytest.raises(NoMatchError, match=r"levels of persona: No persona\)"):
        await load_conversations(store, batch_id=first, factors={"persona": "Calm"})
    with pytest.raises(NoMatchError, match=r"days 3 matches no conversation \(days ran: 1 \| 2\)"):
        await load_conversations(store, days=3)
    with pytest.raises(NoMatchError, match=r"no role 'warden'; roles and agent counts: Guard = 1"):
        await load_conversations(store, counts={"warden": 1})
    with pytest.raises(NoMatchError, match=r"status failed matches .* \(statuses: done\)"):
        await load_conversations(store, status="failed")
    with pytest.raises(NoMatchError, match=r"model gpt-x matches .* \(models: dryrun:dryrun\)"):
        await load_conversations(store, model="gpt-x")
    with pytest.raises(NoMatchError, match="matches all of these filters at once: days 2, factor"):
        await load_conversations(store, days=2, factors={"persona": "No persona"})

    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", store.db_name)
    assert await asyncio.to_thread(main, ["export", "--factor", "gaol=Escape"]) == 2
    err_text = capsys.readouterr().err
    assert "error: Nothing matches: In the database: factor gaol=Escape matches no" in err_text
    assert "goal = Escape; persona = Abusive guard, peaceful prisoner | No persona" in err_text
    assert await asyncio.to_thread(main, ["plot", "--days", "4"]) == 2
    assert "days 4 matches no conversation (days ran: 1 | 2)" in capsys.readouterr().err
