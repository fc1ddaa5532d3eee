"""The Game tab's fidelity preset: choosing ``chatcpr`` or ``repunet`` shows the preset's values
as what an empty field means, and saving stores only what was chosen."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Select

from simulator.domain.models import ExperimentKind
from simulator.settings import Settings
from simulator.tui.app import SimulatorApp
from simulator.tui.editor.game import field_specs, fields_of, params_model, preset_defaults
from tests.plugins.tui import wait_until
from tests.test_tui_game import choose_kind, open_new_editor, widget_id

COMMONS, REPUTATION = ExperimentKind.commons, ExperimentKind.reputation


def defaults(kind: ExperimentKind, game: dict[str, Any]) -> dict[str, Any]:
    specs = fields_of(field_specs(params_model(kind), defaults=preset_defaults(kind, game)))
    return {s.name: s.default for s in specs}


def test_a_preset_changes_what_an_empty_field_means() -> None:
    assert preset_defaults(COMMONS, {}) is None
    assert preset_defaults(COMMONS, {"preset": "neutral"}) is None
    neutral = defaults(COMMONS, {})
    chatcpr = defaults(COMMONS, {"preset": "chatcpr"})
    assert (neutral["estimate_noise_mode"], chatcpr["estimate_noise_mode"]) == (
        "symmetric",
        "one_sided",
    )
    assert (neutral["max_reasks"], chatcpr["max_reasks"]) == (2, 0)
    assert chatcpr["preset"] == "neutral"  # the preset field itself keeps its own default
    assert chatcpr["policy.quota"] == neutral["policy.quota"] == 5.0
    pd = defaults(REPUTATION, {"preset": "repunet", "game": "pd"})
    investment = defaults(REPUTATION, {"preset": "repunet", "game": "investment"})
    assert (pd["history_window"], investment["history_window"]) == (5, 1)
    assert pd["temperature"] == 0.0 and defaults(REPUTATION, {})["temperature"] is None
    assert preset_defaults(REPUTATION, {"preset": "nonsense"}) is None  # shown as a problem


async def test_choosing_a_preset_in_the_game_tab(store: Any, tui_settings: Settings) -> None:
    app = SimulatorApp(tui_settings, store=store, user="alice", offer_example=False)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_new_editor(pilot)
        editor.query_one("#exp-name", Input).value = "Lake as published"
        pane = await choose_kind(pilot, editor, "commons")
        noise = pane.query_one(f"#{widget_id('estimate_noise_mode')}", Select)
        assert noise.value == "symmetric"
        builds = pane.builds
        pane.query_one(f"#{widget_id('preset')}", Select).value = "chatcpr"
        await wait_until(pilot, lambda: pane.builds > builds, what="the form with the preset")
        await pilot.pause()
        noise = pane.query_one(f"#{widget_id('estimate_noise_mode')}", Select)
        assert noise.value == "one_sided"
        reasks = pane.query_one(f"#{widget_id('max_reasks')}", Input)
        assert (reasks.value, reasks.placeholder) == ("", "0")
        assert pane.query_one(f"#{widget_id('preset')}", Select).value == "chatcpr"
        assert editor.draft.game == {"preset": "chatcpr"}
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: editor.saved_id is not None, what="saved")

    stored = await store.experiments.get(editor.saved_id)
    assert stored is not None and stored.game == {"preset": "chatcpr"}
