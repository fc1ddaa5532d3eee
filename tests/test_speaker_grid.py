"""Speaker selection as a grid dimension: several methods in one batch, in the spec, the grid and
the TUI's batch setup (issue 29, point 7)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Checkbox, DataTable

from simulator.db.store import ConversationFilter
from simulator.domain import BatchSpec, MessageKind, SpeakerSelection, Status
from simulator.domain.cells import cell_key
from simulator.domain.errors import SpecError
from simulator.engine.grid import check_grid_size, expand_grid, grid_size
from simulator.engine.spec import parse_spec
from simulator.tui.runs import runs_of
from simulator.tui.screens.batch_setup import BatchSetupScreen
from simulator.tui.screens.dialogs import ConfirmDialog
from simulator.tui.screens.monitor import RunMonitorScreen
from tests.plugins.batches import make_prison_experiment
from tests.plugins.tui import wait_library, wait_until
from tests.plugins.tui_runs import fill, runs_experiment, wait_batch

RR, RANDOM = SpeakerSelection.round_robin, SpeakerSelection.random


def test_a_single_method_is_still_accepted_and_becomes_a_list_of_one() -> None:
    assert BatchSpec(experiment_id="x", speaker_selection="random").speaker_selection == [RANDOM]
    assert BatchSpec(experiment_id="x").speaker_selection == [RR]
    # a batch stored before the dimension existed (a plain string) reads back the same way
    stored = BatchSpec.model_validate({"experiment_id": "x", "speaker_selection": "auto"})
    assert stored.speaker_selection == [SpeakerSelection.auto]


def test_two_methods_double_the_grid_and_each_cell_runs_one() -> None:
    exp = make_prison_experiment()
    one = BatchSpec(experiment_id=exp.id, max_agents={"Guard": 2}, repeats=2)
    two = one.model_copy(update={"speaker_selection": [RR, RANDOM]})
    cells_one, cells_two = expand_grid(exp, one), expand_grid(exp, two)
    assert len(cells_two) == 2 * len(cells_one) == grid_size(exp, two).cells == 8
    assert check_grid_size(exp, two) == 8
    assert "2 speaker selections" in grid_size(exp, two).words
    assert "speaker" not in grid_size(exp, one).words  # one method is not a dimension
    by_method = {m: [c for c in cells_two if c.speaker_selection is m] for m in (RR, RANDOM)}
    assert [len(v) for v in by_method.values()] == [4, 4]
    # the cell key and the seed tell the methods apart; round robin's cells keep their seeds
    assert {cell_key(c) for c in by_method[RR]}.isdisjoint(cell_key(c) for c in by_method[RANDOM])
    assert [c.seed for c in by_method[RR]] == [c.seed for c in cells_one]
    assert {c.seed for c in by_method[RR]}.isdisjoint(c.seed for c in by_method[RANDOM])


def test_the_cap_counts_the_methods() -> None:
    exp = make_prison_experiment()
    spec = BatchSpec(experiment_id=exp.id, repeats=1000, speaker_selection=[RR, RANDOM])
    assert check_grid_size(exp, spec, max_cells=2000) == 2000
    with pytest.raises(SpecError, match="2 speaker selections"):
        check_grid_size(exp, spec, max_cells=1999)


def test_the_spec_file_takes_a_list_of_methods() -> None:
    run = parse_spec(
        {"experiment": "x", "batch": {"speaker_selection": ["round_robin", "random"]}},
        source="s.yaml",
    )
    assert run.batch_spec(make_prison_experiment()).speaker_selection == [RR, RANDOM]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "at least one"),
        (["random", "random"], "listed twice"),
        (["random", "loudest"], "'loudest' is not a speaker selection method"),
        (["round_robin", "manual"], "manual"),
    ],
)
def test_bad_method_lists_name_the_field(value: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"experiment": "x", "batch": {"speaker_selection": value}}, source="s.yaml")
    text = str(info.value)
    assert "batch.speaker_selection: " in text and message in text, text


async def test_a_two_method_speaker_grid_from_batch_setup(store: Any, runs_app: Any) -> None:
    await store.experiments.create(runs_experiment())
    app = runs_app()
    async with app.run_test(size=(100, 34)) as pilot:
        await wait_library(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, BatchSetupScreen), what="setup")
        setup = app.screen
        await wait_until(pilot, lambda: setup.checks >= 1, what="first check")
        await fill(pilot, setup, {"total": "4"})
        assert setup.query_one("#setup-grid", DataTable).row_count == 1

        # The keyboard: tab from round robin to random, space ticks it.
        setup.query_one("#speaker-round_robin", Checkbox).focus()
        await pilot.pause()
        checks = setup.checks
        await pilot.press("tab", "space")
        await wait_until(
            pilot,
            lambda: setup.checks > checks and not setup._recheck_timer_pending(),
            what="the form check",
        )
        assert setup.query_one("#speaker-random", Checkbox).value
        assert setup.plan.spec is not None
        assert setup.plan.spec.speaker_selection == [RR, RANDOM]
        assert setup.query_one("#setup-grid", DataTable).row_count == 2
        assert "2 methods" in str(setup.query_one("#speaker-note").render())

        # No method at all is a problem under the field, and nothing can start.
        for method in ("round_robin", "random"):
            setup.query_one(f"#speaker-{method}", Checkbox).value = False
        await wait_until(pilot, lambda: not setup.plan.ok, what="no method refused")
        assert "at least one method" in str(setup.query_one("#err-speaker").render())
        for method in ("round_robin", "random"):
            setup.query_one(f"#speaker-{method}", Checkbox).value = True
        await wait_until(pilot, lambda: setup.plan.ok, what="two methods again")

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        assert "2 conversations" in app.screen.message
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, RunMonitorScreen), what="monitor")
        batch_id = app.screen.batch_id
        await wait_batch(pilot, batch_id)
        assert runs_of(app).runs[batch_id].batch.status is Status.done

    batch = await store.batches.get(batch_id)
    assert batch is not None and batch.spec.speaker_selection == [RR, RANDOM]
    convs = await store.conversations.list(ConversationFilter(batch_id=batch_id))
    assert sorted(c.cell.speaker_selection.value for c in convs) == ["random", "round_robin"]
    for conv in convs:
        messages = await store.messages.list(conv.id)
        assert sum(m.kind is MessageKind.utterance for m in messages) == 4
