"""The conversation browser through the real app on the embedded server, with conversations a
dryrun batch wrote: read a two-day transcript (every message, both summaries), filter by agent
counts and more, details of what ran, favourite, delete as owner and the refusal for someone
else's conversation, export; the transcript widget on its own (live appends, colours per role)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from simulator.domain import BatchSpec, MessageKind, ModelRef, ModelSet, Provider, Status
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.screens.browser import ConversationBrowserScreen
from simulator.tui.screens.dialogs import ConfirmDialog, TextPrompt
from simulator.tui.widgets.charts import ConversationChart
from simulator.tui.widgets.transcript import TranscriptView
from tests.plugins.tui import settle, wait_library, wait_until
from tests.plugins.tui_browser import (
    FIVE_ROLES,
    BrowserBatch,
    fixed_conversation,
    roles_experiment,
    store_conversation,
)

SIZE = (100, 30)


def normalised(text: str) -> str:
    return " ".join(text.split())


def transcript_text(view: TranscriptView) -> str:
    """What the transcript shows, lines joined without the bars in front of wrapped text."""
    lines = [re.sub(r"^\s*[▌┊│] ?|\s*│\s*$", "", line) for line in view.plain_lines()]
    return normalised(" ".join(lines))


async def open_browser(pilot: Any, experiment_name: str) -> ConversationBrowserScreen:
    library = await wait_library(pilot)
    names = [row.experiment.name for row in library.rows]
    library.query_one("#experiments", DataTable).move_cursor(row=names.index(experiment_name))
    await pilot.press("c")
    app = pilot.app
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ConversationBrowserScreen) and app.screen.loads >= 1,
        what="the browser",
    )
    screen = app.screen
    assert isinstance(screen, ConversationBrowserScreen)
    return screen


async def show(pilot: Any, screen: ConversationBrowserScreen, conversation_id: str) -> None:
    """Highlight a conversation and wait until its transcript is on screen."""
    index = [c.id for c in screen.rows].index(conversation_id)
    screen.query_one("#conversations", DataTable).move_cursor(row=index)
    await wait_until(
        pilot,
        lambda: (
            screen.shown_id == conversation_id
            and bool(screen.transcript.messages)
            and screen.transcript.messages[0].conversation_id == conversation_id
        ),
        what=f"transcript of {conversation_id}",
    )
    await settle(pilot, workers=False)


def app_for(store: Any, settings: Settings, user: str = "alice") -> SimulatorApp:
    return SimulatorApp(settings, store=store, user=user, offer_example=False)


async def test_a_two_day_conversation_shows_every_message_and_both_summaries(
    store: Any, tui_settings: Settings, browser_batch: BrowserBatch
) -> None:
    big = next(c for c in browser_batch.conversations if c.cell.counts_label == "2v2")
    stored = await store.messages.list(big.id)
    assert [m.kind for m in stored].count(MessageKind.summary) == 2
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Prison browser")
        assert len(screen.rows) == 4
        assert {c.cell.counts_label for c in screen.rows} == {"1v1", "1v2", "2v1", "2v2"}
        await show(pilot, screen, big.id)
        await pilot.press("enter")  # read: focus the transcript
        view = screen.transcript
        assert screen.focused is view
        assert [m.seq for m in view.messages] == [m.seq for m in stored]
        text = transcript_text(view)
        for message in stored:
            assert normalised(message.content) in text, message
        assert "Summary of day 1" in text and "Summary of day 2" in text
        assert text.index("Day 1") < text.index("Summary of day 1") < text.index("Day 2")
        assert text.index("Day 2") < text.index("Summary of day 2")
        # the table row says what the conversation is
        table = screen.query_one("#conversations", DataTable)
        row = [str(c) for c in table.get_row_at(table.cursor_row)]
        assert row[2] == "2v2" and row[3] == "2" and row[4] == "6/6" and row[5] == "done"
        # escape: from the transcript back to the list, then back to the library
        await pilot.press("escape")
        assert pilot.app.screen is screen and screen.focused is table
        await pilot.press("escape")
        await wait_library(pilot, loads=2)


async def test_filters_by_agent_counts_batch_days_status_and_model(
    store: Any, tui_settings: Settings, browser_batch: BrowserBatch
) -> None:
    # besides the batch: one conversation run on its own, one day, on another model
    single, messages = fixed_conversation(browser_batch.experiment, days=1)
    llama = ModelRef(provider=Provider.ollama, model="llama3.1:8b")
    cell = single.cell.model_copy(update={"models": ModelSet(default=llama)})
    await store_conversation(store, single.model_copy(update={"cell": cell}), messages)
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Prison browser")
        assert len(screen.rows) == 5
        counts = screen.query_one("#counts-filter", Select)
        values = [value for _, value in screen._options["#counts-filter"]]
        assert values == [
            "",
            "Guard=1,Prisoner=1",
            "Guard=1,Prisoner=2",
            "Guard=2,Prisoner=1",
            "Guard=2,Prisoner=2",
        ]
        loads = screen.loads
        counts.value = "Guard=1,Prisoner=2"
        await wait_until(pilot, lambda: screen.loads > loads and len(screen.rows) == 1)
        assert screen.rows[0].cell.counts == {"Guard": 1, "Prisoner": 2}
        await wait_until(pilot, lambda: screen.shown_id == screen.rows[0].id)
        status = str(screen.query_one("#browser-status", Static).render())
        assert "1 of 5 conversations (filtered)" in status and "of batch 1" in status

        counts.value = "Guard=1,Prisoner=1"  # the batch's 1v1 and the single run
        await wait_until(pilot, lambda: len(screen.rows) == 2, what="two 1v1")
        counts.value = "Guard=2,Prisoner=1"
        await wait_until(
            pilot, lambda: [c.cell.counts_label for c in screen.rows] == ["2v1"], what="2v1"
        )
        # combined with status: none failed
        screen.query_one("#status-filter", Select).value = "failed"
        await wait_until(pilot, lambda: screen.rows == [], what="no failed conversation")
        assert screen.transcript.messages == []
        assert "No conversation matches" in str(screen.query_one("#details-text", Static).render())
        # r resets every filter
        await pilot.press("r")
        await wait_until(pilot, lambda: len(screen.rows) == 5, what="all five again")
        assert counts.value == ""
        # batch
        batch = screen.query_one("#batch-filter", Select)
        assert [label for label, _ in screen._options["#batch-filter"]] == [
            "Any batch",
            "Batch 1 (4)",
            "Single runs (1)",
        ]
        batch.value = browser_batch.batch.id
        await wait_until(pilot, lambda: len(screen.rows) == 4, what="the batch")
        batch.value = "-"
        await wait_until(pilot, lambda: [c.id for c in screen.rows] == [single.id])
        batch.value = ""
        # days
        days = screen.query_one("#days-filter", Select)
        days.value = 2
        await wait_until(pilot, lambda: len(screen.rows) == 4, what="two days")
        days.value = 1
        await wait_until(pilot, lambda: [c.id for c in screen.rows] == [single.id])
        days.value = 0
        # model: any role's, the summarizer's or the manager's
        model = screen.query_one("#model-filter", Select)
        assert [label for label, _ in screen._options["#model-filter"]] == [
            "Any model",
            "dryrun",
            "llama3.1:8b",
        ]
        model.value = "ollama:llama3.1:8b"
        await wait_until(pilot, lambda: [c.id for c in screen.rows] == [single.id])
        model.value = "dryrun:dryrun"  # the single run's agents used it too
        await wait_until(pilot, lambda: len(screen.rows) == 5, what="every dryrun")


async def test_delete_as_owner_and_the_refusal_for_another_owner(
    store: Any, tui_settings: Settings, browser_batch: BrowserBatch
) -> None:
    theirs = browser_batch.conversations[0]
    mine = browser_batch.conversations[1]
    await store.conversations.set_fields(theirs.id, owner="bob")
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Prison browser")
        await show(pilot, screen, theirs.id)
        await pilot.press("x")
        await wait_until(  # the refusal answers the key: once shown, no dialog is coming
            pilot,
            lambda: any(
                "belongs to bob" in str(n.message) and n.severity == "error"
                for n in pilot.app._notifications
            ),
            what="the refusal",
        )
        assert not isinstance(pilot.app.screen, ConfirmDialog)
        assert await store.conversations.get(theirs.id) is not None
        await pilot.press("f")  # nor a favourite of theirs
        await wait_until(
            pilot,
            lambda: any(
                "can mark it as favourite" in str(n.message) for n in pilot.app._notifications
            ),
            what="the refusal",
        )
        stored = await store.conversations.get(theirs.id)
        assert stored is not None and not stored.favourite

        await show(pilot, screen, mine.id)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
        await pilot.press("n")  # keep it
        await wait_until(pilot, lambda: pilot.app.screen is screen)
        assert await store.conversations.get(mine.id) is not None

        loads = screen.loads
        ids = [c.id for c in screen.rows]
        at = ids.index(mine.id)
        neighbour = ids[at + 1] if at + 1 < len(ids) else ids[at - 1]
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.loads > loads and len(screen.rows) == 3)
        assert mine.id not in [c.id for c in screen.rows]
        # the cursor moves on to the next row (or the previous one, for the last)
        await wait_until(pilot, lambda: screen.shown_id == neighbour, what="the next row")
        assert await store.conversations.get(mine.id) is None
        assert await store.messages.list(mine.id) == []


async def test_favourite_toggle_and_the_favourites_filter(
    store: Any, tui_settings: Settings, browser_batch: BrowserBatch
) -> None:
    chosen = browser_batch.conversations[2]
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Prison browser")
        await show(pilot, screen, chosen.id)
        loads = screen.loads
        await pilot.press("f")
        await wait_until(pilot, lambda: screen.loads > loads)
        stored = await store.conversations.get(chosen.id)
        assert stored is not None and stored.favourite
        table = screen.query_one("#conversations", DataTable)
        assert str(table.get_row_at(table.cursor_row)[1]) == "★"
        assert screen.selected() is not None and screen.selected().id == chosen.id  # type: ignore[union-attr]

        screen.query_one("#favourites-filter", Checkbox).value = True
        await wait_until(pilot, lambda: [c.id for c in screen.rows] == [chosen.id])
        loads = screen.loads
        await pilot.press("f")  # and off again
        await wait_until(pilot, lambda: screen.loads > loads and screen.rows == [])
        stored = await store.conversations.get(chosen.id)
        assert stored is not None and not stored.favourite


async def test_details_show_prompts_models_parameters_seed_tokens_and_errors(
    store: Any, tui_settings: Settings, browser_batch: BrowserBatch
) -> None:
    conv = next(c for c in browser_batch.conversations if c.cell.counts_label == "1v2")
    await store.conversations.set_fields(
        conv.id,
        status=Status.failed,
        error="Model [dryrun] stayed unavailable.",
        game={"rounds": 12, "regrowth": 0.25},
    )
    # a stored answer that needed two retries and was flagged (written as the engine would)
    stored = await store.messages.list(conv.id)
    flagged = stored[2].model_copy(update={"seq": len(stored), "attempts": 3, "flags": ["reasked"]})
    await store.messages.append(flagged)
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Prison browser")
        await show(pilot, screen, conv.id)
        await pilot.press("i")
        await wait_until(pilot, lambda: screen.query_one("#details-text", Static).display)
        text = str(screen.query_one("#details-text", Static).render())
        assert f"seed: {conv.seed}" in text
        assert f"used: {conv.tokens.total_tokens} " in text and conv.tokens.total_tokens > 0
        assert "Model [dryrun] stayed unavailable." in text  # never read as markup
        assert "temperature 0.7" in text and "top_k 40" in text
        assert "Game parameters (this run's own)" in text and "regrowth: 0.25" in text
        assert "retries: 1 call needed 2 more attempts" in text
        assert "flags: reasked × 1" in text
        assert len(conv.agents) == 3
        for agent in conv.agents:
            assert f"Prompt of {agent.name} ({agent.role})" in text
            first_line = agent.system_prompt.strip().splitlines()[0]
            assert first_line in text
        assert conv.summarizer_prompt.strip().splitlines()[0] in text
        # the chart: one line per role, over the agent turns of this conversation
        chart = screen.query_one(ConversationChart)
        assert chart.series == {}  # not drawn while hidden
        await pilot.press("g")
        await wait_until(pilot, lambda: set(chart.series) == {"Guard", "Prisoner"}, what="chart")
        turns = sum(len(t) for t, _ in chart.series.values())
        agent_kinds = (MessageKind.utterance, MessageKind.action)
        assert turns == sum(m.kind in agent_kinds for m in [*stored, flagged])
        await pilot.press("t")
        await pilot.pause()
        assert screen.transcript.display and screen.focused is screen.transcript


async def test_export_the_selected_conversation_and_a_bad_file_name(
    store: Any, tui_settings: Settings, browser_batch: BrowserBatch, tmp_path: Path
) -> None:
    conv = browser_batch.conversations[0]
    target = tmp_path / "out" / "one.md"
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Prison browser")
        await show(pilot, screen, conv.id)

        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, TextPrompt))
        pilot.app.screen.query_one(Input).value = str(tmp_path / "nowhere.doc")
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: any(
                "does not say which format" in str(n.message) for n in pilot.app._notifications
            ),
            what="the format error",
        )
        assert not (tmp_path / "nowhere.doc").exists()

        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, TextPrompt))
        pilot.app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, target.exists, what="the exported file")
        text = target.read_text()
        for message in await store.messages.list(conv.id):
            assert message.content.strip().splitlines()[0] in text
        assert browser_batch.conversations[1].id not in text

        # E: every listed conversation, no more (here the filters keep one)
        screen.query_one("#status-filter", Select).value = "done"
        screen.query_one("#counts-filter", Select).value = "Guard=2,Prisoner=1"
        await wait_until(pilot, lambda: len(screen.rows) == 1, what="one listed")
        listed = {c.id for c in screen.rows}
        page = tmp_path / "listed.html"
        await pilot.press("E")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, TextPrompt))
        pilot.app.screen.query_one(Input).value = str(page)
        await pilot.press("enter")
        await wait_until(pilot, page.exists, what="the exported page")
        html = page.read_text()
        exported = set(re.findall(r'data-conversation-id="([0-9a-f]+)"', html))
        assert exported == listed


async def test_five_roles_get_five_distinct_colours(store: Any, tui_settings: Settings) -> None:
    exp = await store.experiments.create(roles_experiment(FIVE_ROLES))
    conv, messages = fixed_conversation(exp)
    await store_conversation(store, conv, messages)
    async with app_for(store, tui_settings).run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Village")
        await show(pilot, screen, conv.id)
        view = screen.transcript
        colors = view.role_colors
        assert list(colors)[:5] == FIVE_ROLES
        assert len({colors[r] for r in FIVE_ROLES}) == 5
        # and the rendered speaker labels carry them: one background per role
        label_backgrounds: dict[str, set[str]] = {}
        for strip in view.lines:
            for segment in strip:
                style = segment.style
                if style is None or style.bgcolor is None:
                    continue
                for role in FIVE_ROLES:
                    if segment.text.strip() == f"{role} 1":
                        label_backgrounds.setdefault(role, set()).add(
                            style.bgcolor.get_truecolor().hex
                        )
        assert {r: {colors[r]} for r in FIVE_ROLES} == label_backgrounds
        # private messages name their recipients
        assert "→ Mayor 1 (private)" in transcript_text(view)


class _TranscriptApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TranscriptView(["Guard", "Prisoner"], id="view")


async def test_transcript_view_appends_live_messages_in_order_once() -> None:
    exp = roles_experiment(["Guard", "Prisoner"])
    _, messages = fixed_conversation(exp)
    app = _TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TranscriptView)
        view.set_messages(messages[:3])
        await pilot.pause()
        for message in messages[3:]:
            view.add_message(message)
        view.add_message(messages[4])  # a repeat is ignored
        await pilot.pause()
        assert [m.seq for m in view.messages] == [m.seq for m in messages]
        text = transcript_text(view)
        # one separator per day, the summaries after their day's messages
        assert text.count("─ Day 1 ─") == 1 and text.count("─ Day 2 ─") == 1
        assert text.index("─ Day 2 ─") < text.index("Summary of day 2")
        # an earlier message arriving late goes in its place
        view.set_messages([m for m in messages if m.seq != 2])
        view.add_message(messages[2])
        assert [m.seq for m in view.messages] == [m.seq for m in messages]
        # a new role (not given) gets the next colour, the known ones keep theirs
        before = view.role_colors
        view.color_for("Visitor")
        after = view.role_colors
        assert {k: after[k] for k in before} == before and after["Visitor"] not in before.values()
        # resizing re-wraps what is shown
        lines = len(view.lines)
        await pilot.resize_terminal(40, 24)
        await wait_until(pilot, lambda: len(view.lines) > lines, what="re-wrapped lines")


async def test_a_running_conversation_grows_live_and_the_list_follows(
    store: Any, tui_settings: Settings
) -> None:
    from simulator.engine.batch import BatchRunner
    from simulator.llm.registry import Backends
    from tests.plugins.batches import make_prison_experiment
    from tests.plugins.tui_browser import DRYRUN

    exp = await store.experiments.create(make_prison_experiment(name="Live", owner="alice"))
    spec = BatchSpec(
        experiment_id=exp.id,
        days=2,
        total_messages=4,
        model_sets=[ModelSet(default=DRYRUN.model_copy(update={"options": {"latency_ms": 20}}))],
    )
    batch = await BatchRunner(store, Backends(max_attempts=1)).start(exp, spec, owner="alice")
    app = app_for(store, tui_settings)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_browser(pilot, "Live")
        await wait_until(pilot, lambda: screen.transcript_loads >= 1, what="empty transcript")
        assert [c.status for c in screen.rows] == [Status.pending]
        assert screen.transcript.messages == []
        assert app.services.batches is not None
        await app.services.batches.run(batch.id)
        stored = await store.messages.list(screen.rows[0].id)
        kinds = [m.kind for m in stored]
        assert kinds.count(MessageKind.utterance) == 4 and kinds.count(MessageKind.summary) == 2
        await wait_until(
            pilot,
            lambda: [m.seq for m in screen.transcript.messages] == [m.seq for m in stored],
            what="the live transcript",
        )
        assert screen.transcript_loads == 1  # appended live, not reloaded
        await wait_until(
            pilot, lambda: [c.status for c in screen.rows] == [Status.done], what="done"
        )


async def test_a_long_transcript_is_drawn_in_chunks_and_completely() -> None:
    from simulator.domain import Message
    from simulator.tui.widgets import transcript as module

    messages = [
        Message(
            conversation_id="long",
            seq=i,
            day=1 + i // 100,
            turn=i,
            speaker=f"Guard {i % 3 + 1}",
            role="Guard",
            content=f"message {i} " + "word " * 40,
        )
        for i in range(300)
    ]
    app = _TranscriptApp()
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(TranscriptView)
        view.set_messages(messages)
        assert view.drawing  # only the first chunk so far: the app keeps running
        first = len(view.lines)
        assert 0 < first < len(messages)
        live = messages[-1].model_copy(update={"seq": 300, "content": "the live one"})
        view.add_message(live)  # arrives while drawing: drawn in its place, once
        await wait_until(pilot, lambda: not view.drawing, what="the whole transcript")
        lines = view.plain_lines()
        headers = [line for line in lines if re.match(r"^ Guard \d ", line)]
        assert len(headers) == 301
        assert sum(bool(re.search(r"─\s+Day \d+\s+─", line)) for line in lines) == 3
        assert "the live one" in lines[-1]
        assert len(messages) > module.CHUNK
