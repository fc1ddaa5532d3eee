"""``simulator commons calibrate|run|fork|judge|report``: the commons game from the command line,
declared as data (``COMMANDS``) with handlers taking plain values (rendered by
simulator/commands/kinds.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from simulator.domain.errors import ConfigurationError, SpecError
from simulator.scenarios.kind import Command, CommandContext, Commands, Option
from simulator.words import plural

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


async def calibrate(
    ctx: CommandContext, *, seeds: int, rounds: int, members: str, json: bool, output: str | None
) -> int:
    import json as json_module

    from simulator.scenarios.commons.calibrate import calibrate as sweep
    from simulator.scenarios.commons.calibrate import plot

    if seeds < 1 or rounds < 1:
        raise ConfigurationError("--seeds and --rounds must be at least 1")
    # the sweep plays its games on its own event loop: in a thread, beside this one
    counts = parse_members(members)
    cells = await asyncio.to_thread(sweep, members=counts, seeds=seeds, rounds=rounds)
    path = await asyncio.to_thread(plot, cells, Path(output)) if output else None
    if json:
        json_module.dump([c.summary() for c in cells], sys.stdout, indent=2)
        print()
    else:
        print(f"{'N':>2}  {'chat':<10} {'quota':>6}  {'collapsed':>9}  {'mean final R':>12}")
        for c in cells:
            print(
                f"{c.members:>2}  {c.chat:<10} {c.quota:>6.2f}  "
                f"{c.collapsed_seeds:>4}/{c.seeds:<4}  {c.mean_final_resource:>12.2f}"
            )
    if path is not None:
        print(f"plot: {path}", file=sys.stderr if json else sys.stdout)
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


def scripted_params(
    base: dict[str, Any],
    *,
    scripted: bool,
    rounds: int | None = None,
    quota: float | None = None,
    saboteur: list[str] | None = None,
    saboteur_goal: str | None = None,
    chat: str = "public",
    monitors: bool = False,
    monitor_context: str | None = None,
    terminate: bool = False,
) -> Any:
    """The parameters of a run: ``base`` (a file or the experiment's) with the options applied;
    with ``scripted`` members, the saboteurs play the saboteur script."""
    from simulator.scenarios.commons.params import load_params
    from simulator.scenarios.commons.setup import scripted_model

    data = load_params(base).model_dump(mode="json")
    if rounds is not None:
        data["rounds"] = rounds
    if quota is not None:
        data["policy"]["quota"] = quota
    if saboteur:
        data["saboteurs"] = list(saboteur)
        if scripted:
            for name in saboteur:
                ref = scripted_model("commons.saboteur", chat=chat)
                data["member_models"][name] = ref.model_dump(mode="json")
    if saboteur_goal:
        data["saboteur_goal"] = saboteur_goal
    if monitors or monitor_context:
        data["monitors"]["enabled"] = True
        if data["monitors"]["model"] is None:
            ref = scripted_model("commons.monitor", terminate=terminate)
            data["monitors"]["model"] = ref.model_dump(mode="json")
        if monitor_context:
            data["monitors"]["context"] = monitor_context
    return load_params(data)


def _out_dir(output: str | None, conversation_id: str) -> Path:
    return Path(output) if output else Path(f"commons_{conversation_id[:8]}")


async def _play_and_report(ctx: CommandContext, conversation_id: str, out: Path) -> tuple[Any, Any]:
    """Play with the session's model backends (closed with the session), then report."""
    from simulator.engine.conversation import run_conversation
    from simulator.scenarios.commons.reports import write_reports

    store = await ctx.store()
    conv = await run_conversation(store, await ctx.backends(), conversation_id)
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


async def run(
    ctx: CommandContext,
    *,
    experiment: str | None,
    members: int,
    rounds: int | None,
    seed: int,
    quota: float | None,
    preset: str | None,
    policy: str,
    chat: str,
    saboteur: list[str],
    saboteur_goal: str | None,
    monitors: bool,
    monitor_context: str | None,
    terminate: bool,
    params: str | None,
    output: str | None,
) -> int:
    from simulator.scenarios.commons.setup import (
        commons_cell,
        commons_experiment,
        scripted_model,
        start_run,
    )

    if members < 1:
        raise ConfigurationError("--members must be at least 1")
    base = read_params_file(params) if params else {}
    if preset:
        base["preset"] = preset
    options: dict[str, Any] = {
        "rounds": rounds,
        "quota": quota,
        "saboteur": saboteur,
        "saboteur_goal": saboteur_goal,
        "chat": chat,
        "monitors": monitors,
        "monitor_context": monitor_context,
        "terminate": terminate,
    }
    store, user = await ctx.store(), await ctx.user()
    if experiment:
        exp = await ctx.experiment(experiment)
        game = scripted_params({**exp.game, **base}, scripted=False, **options)
        model = exp.models[0]
    else:
        game = scripted_params(base, scripted=True, **options)
        exp = commons_experiment(game, name="Commons (scripted)", owner=user)
        model = scripted_model(policy, chat=chat)
    role = exp.roles[0].name if exp.roles else "Member"
    cell = commons_cell(members, model=model, seed=seed, rounds=game.rounds)
    cell = cell.model_copy(update={"counts": {role: members}})
    conv = await start_run(store, exp, cell, owner=user, params=game)
    print(f"conversation {conv.id}: playing {plural(game.rounds, 'round')}...", flush=True)
    conv, files = await _play_and_report(ctx, conv.id, _out_dir(output, conv.id))
    return _print_result(conv, files)


async def fork(
    ctx: CommandContext,
    *,
    conversation: str,
    at_round: int,
    rounds: int | None,
    monitors: bool,
    monitor_model: str | None,
    terminate: bool,
    member_model: list[str],
    no_run: bool,
    output: str | None,
) -> int:
    from simulator.scenarios.commons.params import MonitorParams
    from simulator.scenarios.commons.runner import fork_conversation
    from simulator.scenarios.commons.setup import scripted_model

    members = {}
    for item in member_model:
        name, sep, model = item.partition("=")
        if not sep or not name.strip():
            raise ConfigurationError(f"--member-model {item!r}: use NAME=MODEL")
        members[name.strip()] = parse_model(model)
    monitor = None
    if monitors or monitor_model:
        ref = parse_model(monitor_model) if monitor_model else scripted_model("commons.monitor")
        if terminate and ref.options.get("policy") == "commons.monitor":
            ref = scripted_model("commons.monitor", terminate=True)
        monitor = MonitorParams(enabled=True, model=ref)
    source = await ctx.conversation(conversation)
    store = await ctx.store()
    child = await fork_conversation(
        store,
        source.id,
        at_round,
        rounds=rounds,
        monitors=monitor,
        member_models=members or None,
    )
    print(f"fork {child.id} of {source.id} at round {at_round}")
    if no_run:
        return 0
    conv, files = await _play_and_report(ctx, child.id, _out_dir(output, child.id))
    return _print_result(conv, files)


async def report(ctx: CommandContext, *, conversation: str, output: str | None) -> int:
    from simulator.scenarios.commons.reports import write_reports

    conv = await ctx.conversation(conversation)
    files = await write_reports(await ctx.store(), conv.id, _out_dir(output, conv.id))
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


async def judge(
    ctx: CommandContext, *, conversation: str, model: str, member: list[str], output: str | None
) -> int:
    from simulator.scenarios.commons.judge import judge_run

    ref = parse_model(model)
    store, backends = await ctx.store(), await ctx.backends()
    await backends.ensure_available([ref])
    conv = await ctx.conversation(conversation)
    result = await judge_run(store, backends, conv.id, ref, member or None)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if output:
        _write(Path(output), text + "\n")
        print(f"judgement: {output}")
    else:
        print(text)
    return 0


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------- the declaration

OUTPUT_DIR = Option(("-o", "--output"), "output directory", metavar="DIR")

COMMANDS = Commands(
    name="commons",
    help="the commons game: calibration, scripted runs, forks, reports",
    description="The commons (common-pool resource) game; see docs/commons.md.",
    commands=(
        Command(
            "calibrate",
            "sweep members x chat levels with scripted honest members",
            calibrate,
            description=(
                "For N = 2..7 members and each chat level (silent, public only, public + k "
                "direct messages), set the quota to what that chat level costs the group, play "
                "S seeds of scripted honest members and plot the resource per seed. Nothing is "
                "stored."
            ),
            options=(
                Option(("--seeds",), "seeds per cell (20)", type=int, default=20, metavar="S"),
                Option(("--rounds",), "rounds per game (15)", type=int, default=15),
                Option(
                    ("--members",),
                    "member counts, e.g. 4 or 2-7 (2-7)",
                    default="2-7",
                    metavar="N|A-B",
                ),
                Option(("--json",), "print the summary per cell as JSON", flag=True),
                Option(
                    ("-o", "--output"),
                    "write the plot to this file (none without it)",
                    metavar="PNG",
                ),
            ),
            uses_database=False,
        ),
        Command(
            "run",
            "run a commons game (scripted dryrun members, or a stored experiment)",
            run,
            description=(
                "Play one commons game, store it like any conversation, and write rounds.csv, "
                "summary.json and dashboard.png to the output directory. Without --experiment "
                "the members are scripted dryrun policies (no model is called)."
            ),
            options=(
                Option(("--experiment",), "a stored commons experiment to run", metavar="ID"),
                Option(("--members",), "number of members (4)", type=int, default=4),
                Option(("--rounds",), "rounds (default: the parameters', 15)", type=int),
                Option(("--seed",), type=int, default=0),
                Option(("--quota",), "the quota in force in round 1", type=float),
                Option(
                    ("--preset",),
                    "chatcpr: the published reference's design (its noise, wording, "
                    "first-prompt saboteur goal, no re-asks); options given here still apply "
                    "(see docs/commons.md)",
                    choices=("neutral", "chatcpr"),
                ),
                Option(
                    ("--policy",),
                    "scripted policy of the members: commons.honest, commons.cheater, "
                    "commons.saboteur",
                    default="commons.honest",
                ),
                Option(
                    ("--chat",),
                    "scripted chat level: silent, public, public+K, chatty",
                    default="public",
                ),
                Option(
                    ("--saboteur",),
                    "a saboteur member, e.g. 'Member 1' (repeatable)",
                    metavar="NAME",
                    repeat=True,
                ),
                Option(("--saboteur-goal",), choices=("pinned", "first_prompt")),
                Option(("--monitors",), "a scripted monitor on every member", flag=True),
                Option(("--monitor-context",), choices=("answer", "full")),
                Option(
                    ("--terminate",),
                    "scripted monitors remove members they catch under-reporting",
                    flag=True,
                ),
                Option(("--params",), "commons parameters (YAML or JSON)", metavar="FILE"),
                OUTPUT_DIR,
            ),
        ),
        Command(
            "fork",
            "fork a commons run at a round into a new run with changes",
            fork,
            description=(
                "Create a new conversation sharing rounds 1..N with CONVERSATION (messages and "
                "snapshots copied), apply the changes, and play it to its end."
            ),
            options=(
                Option(("conversation",), "conversation id", metavar="CONVERSATION"),
                Option(("--at-round",), type=int, required=True, metavar="N"),
                Option(("--rounds",), "total rounds of the fork", type=int, metavar="M"),
                Option(("--monitors",), "add scripted monitors", flag=True),
                Option(
                    ("--monitor-model",),
                    "monitor model: a scripted policy (commons.monitor) or provider:model, "
                    "e.g. ollama:llama3.2",
                    metavar="POLICY_OR_MODEL",
                ),
                Option(("--terminate",), flag=True),
                Option(
                    ("--member-model",),
                    "another model for a member, e.g. 'Member 2=commons.cheater' or "
                    "'Member 2=openai:gpt-4o-mini' (repeatable)",
                    metavar="NAME=MODEL",
                    repeat=True,
                ),
                Option(("--no-run",), "create the fork only", flag=True),
                OUTPUT_DIR,
            ),
        ),
        Command(
            "judge",
            "judge members after the game with the deception schema",
            judge,
            description=(
                "Ask MODEL to judge each member's transcript (its answers, the posts and "
                "messages it saw, the public reports) with the deception schema; add objective "
                "flags computed from the log (under-reported rounds, rounds above the fair "
                "share). Prints JSON or writes it to --output. Nothing is stored in the "
                "database."
            ),
            options=(
                Option(("conversation",), metavar="CONVERSATION"),
                Option(
                    ("--model",),
                    "commons.judge (scripted) or provider:model, e.g. openai:gpt-4o-mini",
                    required=True,
                ),
                Option(("--member",), "only this member (repeatable)", metavar="NAME", repeat=True),
                Option(("-o", "--output"), "write the JSON here", metavar="FILE"),
            ),
        ),
        Command(
            "report",
            "write rounds.csv, summary.json and dashboard.png",
            report,
            options=(
                Option(("conversation",), metavar="CONVERSATION"),
                Option(("-o", "--output"), metavar="DIR"),
            ),
        ),
    ),
)

__all__ = ["COMMANDS", "parse_members", "parse_model", "read_params_file", "scripted_params"]
