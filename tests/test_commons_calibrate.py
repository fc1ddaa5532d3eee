"""The reference's calibration with scripted members (acceptance 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.scenarios.commons.calibrate import ChatLevel, calibrate, chat_levels, plot


def test_chat_levels_and_quotas() -> None:
    assert [lv.name for lv in chat_levels(4)] == [
        "silent",
        "public",
        "public+1",
        "public+2",
        "public+3",
    ]
    cells = calibrate(members=[2], seeds=1, rounds=2)
    assert [c.quota for c in cells] == pytest.approx([0.8, 1.2, 1.8])


def test_four_members_twenty_seeds(tmp_path: Path) -> None:
    levels = {4: [ChatLevel(False, 0), ChatLevel(True, 3)]}
    silent, chatty = calibrate(members=[4], seeds=20, rounds=15, levels=levels)
    assert (silent.chat, silent.quota) == ("silent", pytest.approx(1.6))
    assert silent.collapsed_seeds == 0
    assert silent.mean_final_resource > 40  # a quiet group lets the lake regrow
    assert (chatty.chat, chatty.quota) == ("public+3", pytest.approx(6.0))
    assert chatty.collapsed_seeds >= 18  # nearly every seed
    assert chatty.mean_final_resource < 2
    assert len(silent.trajectories) == 20 and len(silent.trajectories[0]) == 16
    assert silent.trajectories[0][0] == 40.0
    out = plot([silent, chatty], tmp_path / "cal.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
