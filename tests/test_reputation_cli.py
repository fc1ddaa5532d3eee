"""``simulator reputation run|fork|report`` in-process, on the session embedded server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pymongo
import pytest

from simulator.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def db(mongo_uri: str, tmp_data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    name = f"t_rep_cli_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.chdir(tmp_path)
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def test_dryrun_model_run_writes_the_metrics_table_and_network_png(  # type: ignore[no-untyped-def]
    db, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "reputation",
            "run",
            "--model",
            "dryrun",
            "--game",
            "investment",
            "--population",
            "4",
            "--steps",
            "2",
            "--network-steps",
            "1,2",
            "-o",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    table = pd.read_csv(out / "metrics.csv")
    assert list(table["step"]) == [0, 1, 2]
    assert {"cooperation", "acceptance_rate", "density", "gossip_count", "fallbacks"} <= set(
        table.columns
    )
    assert table["fallbacks"].iloc[1:].sum() > 0  # random dryrun answers: defaults were recorded
    for name in (
        "network_step1.png",
        "network_step2.png",
        "cooperation.png",
        "reputation_heatmap.png",
    ):
        assert (out / name).read_bytes()[:8] == PNG
    agents = pd.read_csv(out / "agents.csv")
    assert len(agents) == 4 * 3
    (conv,) = list(db.conversations.find())
    assert conv["status"] == "done" and conv["kind"] == "reputation"
    assert "network_step2: " in printed


def test_scripted_run_then_fork_and_report(  # type: ignore[no-untyped-def]
    db, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "reputation",
                "run",
                "--mix",
                "reputation_following=3,always_defect=1",
                "--game",
                "pd",
                "--steps",
                "3",
                "--seed",
                "4",
                "-o",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    conv_id = printed.split("conversation ", 1)[1].split(":", 1)[0]
    assert (
        main(
            [
                "reputation",
                "fork",
                conv_id,
                "--step",
                "1",
                "--gossip",
                "off",
                "-o",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    forked = pd.read_csv(tmp_path / "b" / "metrics.csv")
    assert list(forked["step"]) == [0, 1, 2, 3]
    assert forked["gossip_count"].iloc[2:].sum() == 0
    assert db.conversations.count_documents({"parent_id": conv_id, "forked_at": 1}) == 1
    assert main(["reputation", "report", conv_id, "-o", str(tmp_path / "c")]) == 0
    original = pd.read_csv(tmp_path / "c" / "metrics.csv")
    records = pd.read_csv(tmp_path / "c" / "records.csv")
    assert {"holder", "target", "role", "step", "source", "score", "very_bad", "very_good"} <= set(
        records.columns
    )
    assert set(records["step"]) == {1, 2, 3}
    gossip = pd.read_csv(tmp_path / "c" / "gossip.csv")
    assert {"tone", "credibility", "hop", "weight"} <= set(gossip.columns) and len(gossip) > 0
    interactions = pd.read_csv(tmp_path / "c" / "interactions.csv")
    assert len(interactions) == 3 * 2 and "moves" in interactions.columns
    cols = ["cooperation", "edges", "mutual_ties", "gossip_count", "mean_resources", "decisions"]
    assert original.loc[1, cols].equals(forked.loc[1, cols])  # identical up to the fork


def test_fast_scripted_run_and_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "reputation",
                "run",
                "--fast",
                "--mix",
                "tit_for_tat=2,always_defect=2",
                "--game",
                "signup",
                "--steps",
                "2",
                "-o",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    assert list(pd.read_csv(tmp_path / "f" / "metrics.csv")["step"]) == [0, 1, 2]
    assert set(pd.read_csv(tmp_path / "f" / "interactions.csv")["step"]) == {1, 2}
    assert main(["reputation", "run", "--fast", "--mix", "nonsense", "-o", str(tmp_path)]) == 2
    assert "KIND=N" in capsys.readouterr().err
    assert main(["reputation", "run", "--fast", "--mix", "sneaky=2", "-o", str(tmp_path)]) == 2
    assert "unknown scripted reputation policy" in capsys.readouterr().err


def test_run_a_stored_experiment_with_options(  # type: ignore[no-untyped-def]
    db, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "rep.yaml"
    spec.write_text(
        "name: PD with two temperaments\n"
        "kind: reputation\n"
        "roles:\n"
        "  - name: Altruist\n"
        "    sections: [{title: Temperament, content: You care about others. You are <NAME>.,"
        " kind: private}]\n"
        "  - name: Rational\n"
        "    sections: [{title: Temperament, content: You maximise your gain., kind: private}]\n"
        "game: {game: pd, population: 4, steps: 5}\n"
    )
    assert main(["experiments", "import", str(spec)]) == 0
    (stored,) = list(db.experiments.find())
    capsys.readouterr()
    assert (
        main(
            [
                "reputation",
                "run",
                "--experiment",
                str(stored["_id"]),
                "--steps",
                "2",
                "--gossip",
                "off",
                "--model",
                "dryrun",
                "-o",
                str(tmp_path / "x"),
            ]
        )
        == 0
    )
    derived = db.experiments.find_one({"parent_id": stored["_id"]})
    assert derived is not None
    assert derived["game"]["steps"] == 2 and derived["game"]["gossip"] is False
    (conv,) = list(db.conversations.find())
    assert conv["status"] == "done" and conv["experiment_id"] == derived["_id"]
    assert sorted(a["role"] for a in conv["agents"]) == [
        "Altruist",
        "Altruist",
        "Rational",
        "Rational",
    ]
    altruists = [a for a in conv["agents"] if a["role"] == "Altruist"]
    assert all(
        f"You care about others. You are {a['name']}." in a["system_prompt"] for a in altruists
    )
    assert list(pd.read_csv(tmp_path / "x" / "metrics.csv")["step"]) == [0, 1, 2]
