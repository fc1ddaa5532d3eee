"""Benchmark scripts run as a user runs them (a fresh process through their own entry point),
at a tiny size: a script that cannot start measures nothing (benchmarks/cache.py once failed
with "No experiment kinds are installed in this process")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(name: str, *args: str) -> dict[str, object]:
    """Run ``benchmarks/<name>`` with ``args``; its last JSON line, once it exited 0."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,  # hang guard only
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return last_json(proc.stdout)


def last_json(stdout: str) -> dict[str, object]:
    line = [ln for ln in stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def test_the_cache_benchmark_reruns_from_the_cache_at_zero_calls() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "cache.py"),
            "--messages",
            "4",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,  # hang guard only
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = last_json(proc.stdout)
    assert figures["rerun_calls"] == 0
    assert figures["rerun_hits"] == figures["rerun_answers"] == figures["learned_from_calls"]
    assert figures["dryrun_estimate_error"]["calls"] == 0.0  # type: ignore[index]


def test_the_ui_responsiveness_benchmark_measures_a_batch_and_the_monitor() -> None:
    figures = run_script("ui_responsiveness.py", "--batches", "25", "--listed", "50")
    assert {"load_avg_start", "load_avg_end"} <= figures.keys()
    assert len(figures) > 2, figures  # the scenarios' figures, not only the load averages


def test_the_scale_benchmark_runs_a_batch_and_reads_a_transcript(tmp_path: Path) -> None:
    """benchmarks/scale.py at a tiny size: the batch it times, a transcript on a pre-filled
    database (it once failed since the kinds merge: "No experiment kinds are installed")."""
    script = str(ROOT / "benchmarks" / "scale.py")
    figures: dict[str, dict[str, object]] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # as the script says: this tree's simulator
    modes = (
        ["batch", "--conversations", "4", "--latency-ms", "0"],
        ["transcript", "--prefill", "300", "--data-dir", str(tmp_path / "db")],
    )
    for mode in modes:
        proc = subprocess.run(
            [sys.executable, script, *mode, "--runs", "1"],
            capture_output=True,
            env=env,
            text=True,
            cwd=ROOT,
            timeout=600,  # hang guard only
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"code: {ROOT / 'simulator'}" in proc.stdout
        figures[mode[0]] = last_json(proc.stdout)
    assert figures["batch"]["stored"] == 4 * 22
    # the series that tell a slower machine from a costlier server (empty below 2,000 stored)
    for series in ("client_cpu_ms_per_message_by_2k", "steal_pct_by_2k"):
        assert figures["batch"][series] == [], series
    assert figures["transcript"]["transcript_ms"] is not None


SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))


def test_every_benchmark_script_starts() -> None:
    """Each script imports what it names and answers --help (benchmarks/pools_workers.py once
    imported ``load_example`` from where it no longer was, and measured nothing)."""
    assert "pools_workers.py" in SCRIPTS
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in SCRIPTS:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / name), "--help"],
            capture_output=True,
            env=env,
            text=True,
            cwd=ROOT,
            timeout=600,  # hang guard only
        )
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        assert "usage:" in proc.stdout, name


def test_the_pools_and_workers_benchmark_runs_three_workers_on_a_tiny_batch() -> None:
    figures = run_script(
        "pools_workers.py", "--conversations", "6", "--messages", "2", "--latency-ms", "0"
    )
    assert figures["worker_exit_codes"] == [0, 0, 0]
    assert figures["every_conversation_exact"] is True
    assert figures["calls"] == figures["calls_expected"] == 6 * 3
    assert all(n <= figures["limit_per_server"] for n in figures["max_calls_at_once"])  # type: ignore[union-attr]


def test_the_scale_benchmarks_medians_keep_each_runs_series() -> None:
    """--runs N prints the median of each figure; a series is not a figure: the median line
    once showed the first run's series as if it were all three runs'."""
    from benchmarks.scale import medians

    runs = [
        {"wall_over_ideal": 1.2, "steal_pct_by_2k": [0.0, 1.0], "mode": "batch"},
        {"wall_over_ideal": 1.1, "steal_pct_by_2k": [19.0], "mode": "batch"},
        {"wall_over_ideal": 1.3, "steal_pct_by_2k": [], "mode": "batch"},
    ]
    assert medians(runs) == {
        "wall_over_ideal": 1.2,
        "steal_pct_by_2k": [[0.0, 1.0], [19.0], []],
        "mode": "batch",
    }
