"""``simulator commons calibrate|run|fork|report``: the commons game from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.domain.errors import ConfigurationError, SpecError

if TYPE_CHECKING:
    from simulator.services.container import Services


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commons = sub.add_parser(
        "commons",
        help="the commons game: calibration, scripted runs, forks, reports",
        description="The commons (common-pool resource) game; see docs/commons.md.",
    )
    cs = commons.add_subparsers(dest="commons_command", metavar="COMMAND", required=True)

    cal = cs.add_parser(
        "calibrate",
        help="sweep members x chat levels with scripted honest members",
        description=(
            "For N = 2..7 members and each chat level (silent, public only, public + k direct "
            "messages), set the quota to what that chat level costs the group, play S seeds of "
            "scripted honest members and plot the resource per seed. Nothing is stored."
        ),
    )
    cal.add_argument("--seeds", type=int, default=20, metavar="S", help="seeds per cell (20)")
    cal.add_argument("--rounds", type=int, default=15, help="rounds per game (15)")
    cal.add_argument(
        "--members", default="2-7", metavar="N|A-B", help="member counts, e.g. 4 or 2-7 (2-7)"
    )
    cal.add_argument("--json", action="store_true", help="print the summary per cell as JSON")
    cal.add_argument(
        "-o", "--output", metavar="PNG", help="write the plot to this file (none without it)"
    )
    cal.set_defaults(func=cmd_calibrate, uses_database=False)

    run = cs.add_parser(
        "run",
        help="run a commons game (scripted dryrun members, or a stored experiment)",
        description=(
            "Play one commons game, store it like any conversation, and write rounds.csv, "
            "summary.json and dashboard.png to the output directory. Without --experiment the "
            "members are scripted dryrun policies (no model is called)."
        ),
    )
    run.add_argument("--experiment", metavar="ID", help="a stored commons experiment to run")
    run.add_argument("--members", type=int, default=4, help="number of members (4)")
    run.add_argument("--rounds", type=int, help="rounds (default: the parameters', 15)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--quota", type=float, help="the quota in force in round 1")
    run.add_argument(
        "--preset",
        choices=["neutral", "chatcpr"],
        help="chatcpr: the published reference's design (its noise, wording, first-prompt "
        "saboteur goal, no re-asks); options given here still apply (see docs/commons.md)",
    )
    run.add_argument(
        "--policy",
        default="commons.honest",
        help="scripted policy of the members: commons.honest, commons.cheater, commons.saboteur",
    )
    run.add_argument(
        "--chat", default="public", help="scripted chat level: silent, public, public+K, chatty"
    )
    run.add_argument(
        "--saboteur",
        action="append",
        default=[],
        metavar="NAME",
        help="a saboteur member, e.g. 'Member 1' (repeatable)",
    )
    run.add_argument("--saboteur-goal", choices=["pinned", "first_prompt"])
    run.add_argument("--monitors", action="store_true", help="a scripted monitor on every member")
    run.add_argument("--monitor-context", choices=["answer", "full"])
    run.add_argument(
        "--terminate",
        action="store_true",
        help="scripted monitors remove members they catch under-reporting",
    )
    run.add_argument("--params", metavar="FILE", help="commons parameters (YAML or JSON)")
    run.add_argument("-o", "--output", metavar="DIR", help="output directory")
    run.set_defaults(func=cmd_run, uses_database=True)

    fork = cs.add_parser(
        "fork",
        help="fork a commons run at a round into a new run with changes",
        description=(
            "Create a new conversation sharing rounds 1..N with CONVERSATION (messages and "
            "snapshots copied), apply the changes, and play it to its end."
        ),
    )
    fork.add_argument("conversation", metavar="CONVERSATION", help="conversation id")
    fork.add_argument("--at-round", type=int, required=True, metavar="N")
    fork.add_argument("--rounds", type=int, metavar="M", help="total rounds of the fork")
    fork.add_argument("--monitors", action="store_true", help="add scripted monitors")
    fork.add_argument(
        "--monitor-model",
        metavar="POLICY_OR_MODEL",
        help="monitor model: a scripted policy (commons.monitor) or "
        "provider:model, e.g. ollama:llama3.2",
    )
    fork.add_argument("--terminate", action="store_true")
    fork.add_argument(
        "--member-model",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="another model for a member, e.g. 'Member 2=commons.cheater' or "
        "'Member 2=openai:gpt-4o-mini' (repeatable)",
    )
    fork.add_argument("--no-run", action="store_true", help="create the fork only")
    fork.add_argument("-o", "--output", metavar="DIR", help="output directory")
    fork.set_defaults(func=cmd_fork, uses_database=True)

    judge = cs.add_parser(
        "judge",
        help="judge members after the game with the deception schema",
        description=(
            "Ask MODEL to judge each member's transcript (its answers, the posts and messages it "
            "saw, the public reports) with the deception schema; add objective flags computed "
            "from the log (under-reported rounds, rounds above the fair share). Prints JSON or "
            "writes it to --output. Nothing is stored in the database."
        ),
    )
    judge.add_argument("conversation", metavar="CONVERSATION")
    judge.add_argument(
        "--model",
        required=True,
        help="commons.judge (scripted) or provider:model, e.g. openai:gpt-4o-mini",
    )
    judge.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="NAME",
        help="only this member (repeatable)",
    )
    judge.add_argument("-o", "--output", metavar="FILE", help="write the JSON here")
    judge.set_defaults(func=cmd_judge, uses_database=True)

    report = cs.add_parser("report", help="write rounds.csv, summary.json and dashboard.png")
    report.add_argument("conversation", metavar="CONVERSATION")
    report.add_argument("-o", "--output", metavar="DIR")
    report.set_defaults(func=cmd_report, uses_database=True)


# ---------------------------------------------------------------------------- calibrate


def parse_members(text: str) -> list[int]:
    try:
        if "-" in text:
            a, b = (int(x) for x in text.split("-", 1))
            out = list(range(a, b + 1))
        else:
            out = [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigurationError(
            f"--members {text!r}: use a number (4), a list (2,4) or a range (2-7)"
        ) from None
    if not out or min(out) < 1:
        raise ConfigurationError(f"--members {text!r}: at least one member")
    return out


def cmd_calibrate(args: argparse.Namespace) -> int:
    from simulator.scenarios.commons.calibrate import calibrate, plot

    if args.seeds < 1 or args.rounds < 1:
        raise ConfigurationError("--seeds and --rounds must be at least 1")
    cells = calibrate(members=parse_members(args.members), seeds=args.seeds, rounds=args.rounds)
    path = plot(cells, Path(args.output)) if args.output else None
    if args.json:
        json.dump([c.summary() for c in cells], sys.stdout, indent=2)
        print()
    else:
        print(f"{'N':>2}  {'chat':<10} {'quota':>6}  {'collapsed':>9}  {'mean final R':>12}")
        for c in cells:
            print(
                f"{c.members:>2}  {c.chat:<10} {c.quota:>6.2f}  "
                f"{c.collapsed_seeds:>4}/{c.seeds:<4}  {c.mean_final_resource:>12.2f}"
            )
    if path is not None:
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


# ---------------------------------------------------------------------------- run / fork


def parse_model(text: str) -> Any:
    """A scripted policy name (commons.*) or provider:model."""
    from simulator.domain import ModelRef, Provider
    from simulator.scenarios.commons.setup import scripted_model

    text = text.strip()
    if text.startswith("commons."):
        return scripted_model(text)
    provider, sep, model = text.partition(":")
    if not sep or provider not in ("ollama", "openai", "dryrun"):
        raise ConfigurationError(
            f"model {text!r}: use a scripted policy (commons.honest, commons.cheater, "
            "commons.saboteur, commons.monitor) or provider:model (ollama:..., openai:...)"
        )
    return ModelRef(provider=Provider(provider), model=model)


def read_params_file(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    if p.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the parameters must be a mapping")
    return data


def scripted_params(args: argparse.Namespace, base: dict[str, Any]) -> Any:
    """The parameters of a run: ``base`` (a file or the experiment's) with the options applied."""
    from simulator.scenarios.commons.params import load_params
    from simulator.scenarios.commons.setup import scripted_model

    data = load_params(base).model_dump(mode="json")
    if args.rounds is not None:
        data["rounds"] = args.rounds
    if args.quota is not None:
        data["policy"]["quota"] = args.quota
    if args.saboteur:
        data["saboteurs"] = list(args.saboteur)
        if not args.experiment:  # scripted members: the saboteurs play the saboteur script
            for name in args.saboteur:
                ref = scripted_model("commons.saboteur", chat=args.chat)
                data["member_models"][name] = ref.model_dump(mode="json")
    if args.saboteur_goal:
        data["saboteur_goal"] = args.saboteur_goal
    if args.monitors or args.monitor_context:
        data["monitors"]["enabled"] = True
        if data["monitors"]["model"] is None:
            ref = scripted_model("commons.monitor", terminate=args.terminate)
            data["monitors"]["model"] = ref.model_dump(mode="json")
        if args.monitor_context:
            data["monitors"]["context"] = args.monitor_context
    return load_params(data)


def _out_dir(args: argparse.Namespace, conversation_id: str) -> Path:
    return Path(args.output) if args.output else Path(f"commons_{conversation_id[:8]}")


async def _play_and_report(services: Services, conversation_id: str, out: Path) -> tuple[Any, dict]:
    from simulator.engine.conversation import run_conversation
    from simulator.scenarios.commons.reports import write_reports

    store = services.store
    conv = await run_conversation(store, services.backends, conversation_id)
    files = await write_reports(store, conversation_id, out)
    return conv, files


def _print_result(conv: Any, files: dict[str, Path]) -> int:
    print(
        f"conversation {conv.id}: {conv.status.value}" + (f" ({conv.error})" if conv.error else "")
    )
    summary = json.loads(files["summary"].read_text(encoding="utf-8"))
    print(
        f"rounds {summary['rounds_played']}, collapsed {summary['collapsed']}, final resource "
        f"{summary['final_resource']:.2f}, welfare {summary['welfare']:.2f}, "
        f"members {summary['members_final']}"
    )
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0 if conv.status.value == "done" else 1


def cmd_run(args: argparse.Namespace) -> int:
    import simulator.scenarios.commons  # noqa: F401  (registers the kind and the policies)
    from simulator.commands.common import game_experiment, open_session
    from simulator.scenarios.commons.setup import (
        commons_cell,
        commons_experiment,
        scripted_model,
        start_run,
    )

    if args.members < 1:
        raise ConfigurationError("--members must be at least 1")
    base = read_params_file(args.params) if args.params else {}
    if args.preset:
        base["preset"] = args.preset

    async def go() -> int:
        async with open_session() as services:
            store, user = services.store, services.user
            if args.experiment:
                exp = await game_experiment(store, args.experiment, "commons", user)
                params = scripted_params(args, {**exp.game, **base})
                model = exp.models[0]
            else:
                params = scripted_params(args, base)
                exp = commons_experiment(params, name="Commons (scripted)", owner=user)
                model = scripted_model(args.policy, chat=args.chat)
            role = exp.roles[0].name if exp.roles else "Member"
            cell = commons_cell(args.members, model=model, seed=args.seed, rounds=params.rounds)
            cell = cell.model_copy(update={"counts": {role: args.members}})
            conv = await start_run(store, exp, cell, owner=user, params=params)
            print(f"conversation {conv.id}: playing {params.rounds} rounds...", flush=True)
            conv, files = await _play_and_report(services, conv.id, _out_dir(args, conv.id))
            return _print_result(conv, files)

    return asyncio.run(go())


def cmd_fork(args: argparse.Namespace) -> int:
    import simulator.scenarios.commons  # noqa: F401
    from simulator.commands.common import game_conversation, open_session
    from simulator.scenarios.commons.params import MonitorParams
    from simulator.scenarios.commons.runner import fork_conversation
    from simulator.scenarios.commons.setup import scripted_model

    members = {}
    for item in args.member_model:
        name, sep, model = item.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--member-model {item!r}: use NAME=MODEL")
        members[name.strip()] = parse_model(model)
    monitors = None
    if args.monitors or args.monitor_model:
        ref = (
            parse_model(args.monitor_model)
            if args.monitor_model
            else scripted_model("commons.monitor")
        )
        if args.terminate and ref.options.get("policy") == "commons.monitor":
            ref = scripted_model("commons.monitor", terminate=True)
        monitors = MonitorParams(enabled=True, model=ref)

    async def go() -> int:
        async with open_session() as services:
            store = services.store
            source = await game_conversation(store, args.conversation, "commons")
            fork = await fork_conversation(
                store,
                source.id,
                args.at_round,
                rounds=args.rounds,
                monitors=monitors,
                member_models=members or None,
            )
            print(f"fork {fork.id} of {source.id} at round {args.at_round}")
            if args.no_run:
                return 0
            conv, files = await _play_and_report(services, fork.id, _out_dir(args, fork.id))
            return _print_result(conv, files)

    return asyncio.run(go())


def cmd_report(args: argparse.Namespace) -> int:
    from simulator.commands.common import game_conversation, open_session
    from simulator.scenarios.commons.reports import write_reports

    async def go() -> int:
        async with open_session() as services:
            store = services.store
            conv = await game_conversation(store, args.conversation, "commons")
            files = await write_reports(store, conv.id, _out_dir(args, conv.id))
        for name, path in files.items():
            print(f"{name}: {path}")
        return 0

    return asyncio.run(go())


def cmd_judge(args: argparse.Namespace) -> int:
    import simulator.scenarios.commons  # noqa: F401
    from simulator.commands.common import game_conversation, open_session
    from simulator.scenarios.commons.judge import judge_run

    model = parse_model(args.model)

    async def go() -> dict[str, Any]:
        async with open_session() as services:
            store, backends = services.store, services.backends
            await backends.ensure_available([model])
            conv = await game_conversation(store, args.conversation, "commons")
            return await judge_run(store, backends, conv.id, model, args.member or None)

    result = asyncio.run(go())
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"judgement: {args.output}")
    else:
        print(text)
    return 0
