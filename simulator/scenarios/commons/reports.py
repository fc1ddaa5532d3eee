"""The files of a commons run: metrics CSV, run summary JSON and the dashboard PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.scenarios.commons import metrics
from simulator.scenarios.commons.setup import load_state
from simulator.scenarios.commons.state import GameState


def write_files(state: GameState, conversation_id: str, out_dir: Path) -> dict[str, Path]:
    """``rounds.csv`` (one row per round), ``summary.json`` (the run), ``dashboard.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = metrics.write_csv(metrics.round_rows(state), out_dir / "rounds.csv")
    summary = {"conversation_id": conversation_id, **metrics.run_summary(state)}
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    png = metrics.dashboard(
        state, out_dir / "dashboard.png", title=f"Commons {conversation_id[:8]}"
    )
    return {"csv": csv_path, "summary": summary_path, "dashboard": png}


async def write_reports(store: Any, conversation_id: str, out_dir: Path) -> dict[str, Path]:
    state = await load_state(store, conversation_id)
    return write_files(state, conversation_id, out_dir)
