"""``simulator reputation run|fork|report``: the reputation games from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from simulator.services.container import Services

ON_OFF = ("on", "off")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser(
        "reputation",
        help="reputation games: investment, prisoner's dilemma, sign-up (run, fork, report)",
        description="Reputation games on a social network with gossip; see docs/reputation.md.",
    )
    rs = rep.add_subparsers(dest="reputation_command", metavar="COMMAND", required=True)

    run = rs.add_parser(
        "run",
        help="run a reputation game (scripted agents or a model) and write metrics and plots",
        description=(
            "Play one reputation game, store it like any conversation (every decision, one "
            "snapshot per step), and write metrics.csv, agents.csv, cooperation.png, "
            "network_step<N>.png and reputation_heatmap.png to the output directory. Agents are "
            "scripted dryrun policies (--mix) or one model for everyone (--model)."
        ),
    )
    run.add_argument("--experiment", metavar="ID", help="a stored reputation experiment")
    run.add_argument("--game", choices=("investment", "pd", "signup"), help="the game")
    run.add_argument("--population", type=int, help="agents (default 20; with --mix: its total)")
    run.add_argument("--steps", type=int, help="steps (default 10)")
    run.add_argument("--seed", type=int, default=0, help="the run's seed (0)")
    run.add_argument(
        "--preset",
        choices=("neutral", "repunet"),
        help="repunet: the published design (its personas per game, wording, update inputs, "
        "history windows, temperature 0); options given here still apply "
        "(see docs/reputation.md)",
    )
    _treatment_args(run)
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any parameter, value as JSON (e.g. --set k=3 --set blacklist_size=10)",
    )
    run.add_argument("--personas", metavar="FILE", help="personas from a YAML/JSON file")
    run.add_argument(
        "--mix",
        metavar="KIND=N,...",
        help="scripted agents, e.g. reputation_following=15,always_defect=5 (kinds: "
        "always_cooperate, always_defect, tit_for_tat, reputation_following)",
    )
    run.add_argument(
        "--model", metavar="MODEL", help="dryrun, ollama:NAME or openai:NAME for every agent"
    )
    run.add_argument("--latency-ms", type=float, default=0, help="dryrun latency per call")
    run.add_argument(
        "--fast",
        action="store_true",
        help="scripted agents only: play in-process without storing anything",
    )
    _report_args(run)
    run.set_defaults(func=cmd_run, uses_database=True)

    fork = rs.add_parser(
        "fork",
        help="continue a stored run from a step with changed flags, models or step count",
        description=(
            "Copy a conversation up to the end of --step into a new conversation, change the "
            "treatment flags, the model or the step count, and play the rest."
        ),
    )
    fork.add_argument("conversation", metavar="CONVERSATION_ID")
    fork.add_argument("--step", type=int, required=True, help="fork after this step")
    fork.add_argument("--steps", type=int, help="new total step count")
    fork.add_argument("--model", metavar="MODEL", help="a new model for every agent")
    _treatment_args(fork)
    _report_args(fork)
    fork.set_defaults(func=cmd_fork, uses_database=True)

    report = rs.add_parser(
        "report", help="write the metrics table and plots of a stored reputation run"
    )
    report.add_argument("conversation", metavar="CONVERSATION_ID")
    _report_args(report)
    report.set_defaults(func=cmd_report, uses_database=True)


def _treatment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reputation", choices=ON_OFF, help="reputation records (on)")
    p.add_argument("--gossip", choices=ON_OFF, help="gossip (on)")
    p.add_argument(
        "--observation",
        choices=ON_OFF,
        help="public observation channel (default: on for investment with reputation and gossip)",
    )
    p.add_argument("--persona-rewrite", choices=ON_OFF, help="persona rewrite (on)")


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (reputation_<id>)")
    p.add_argument(
        "--network-steps", metavar="N,...", help="steps to draw the network at (default: last)"
    )


# --------------------------------------------------------------------------- parsing


def _flags(args: argparse.Namespace) -> dict[str, str]:
    """Treatment flags as factor levels (the fork's way of changing parameters)."""
    out = {}
    for opt, key in (
        ("reputation", "reputation"),
        ("gossip", "gossip"),
        ("observation", "public_observation"),
        ("persona_rewrite", "persona_rewrite"),
    ):
        value = getattr(args, opt, None)
        if value is not None:
            out[key] = value
    return out


def parse_mix(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        kind, sep, n = part.strip().partition("=")
        if not sep or not n.strip().isdigit():
            raise ConfigurationError(f"--mix {text!r}: write KIND=N,... e.g. always_defect=5")
        out[kind.strip()] = int(n)
    if sum(out.values()) < 2:
        raise ConfigurationError("--mix needs at least 2 agents")
    return out


def parse_model(text: str, latency_ms: float = 0) -> Any:
    from simulator.domain import ModelRef, Provider

    text = text.strip()
    options = {"latency_ms": latency_ms} if latency_ms else {}
    if text == "dryrun":
        return ModelRef(provider=Provider.dryrun, model="dryrun", options=options)
    provider, sep, name = text.partition(":")
    if not sep or provider not in {p.value for p in Provider} or not name.strip():
        raise ConfigurationError(
            f"model {text!r}: write dryrun, ollama:NAME or openai:NAME (e.g. openai:gpt-4o-mini)"
        )
    return ModelRef(provider=Provider(provider), model=name.strip(), options=options)


def _game_params(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    data = dict(base)
    if getattr(args, "preset", None):
        data["preset"] = args.preset
    for key in ("game", "population", "steps"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    for key, level in _flags(args).items():
        data[key] = level == "on"
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--set {item!r}: write KEY=VALUE")
        try:
            data[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            data[key.strip()] = value
    if args.personas:
        from simulator.scenarios.reputation.personas import load_personas_file

        data["personas"] = load_personas_file(args.personas)
    return data


def _network_steps(args: argparse.Namespace) -> list[int] | None:
    if not args.network_steps:
        return None
    try:
        return [int(s) for s in args.network_steps.split(",") if s.strip()]
    except ValueError:
        raise ConfigurationError("--network-steps: write step numbers, e.g. 1,5,10") from None


def _out(args: argparse.Namespace, conversation_id: str) -> Path:
    return Path(args.output) if args.output else Path(f"reputation_{conversation_id[:8]}")


def _print_files(files: dict[str, Path]) -> None:
    for name, path in files.items():
        print(f"{name}: {path}")


def _print_last(metrics: list[dict[str, Any]]) -> None:
    last = metrics[-1]
    coop = last.get("cooperation")
    print(
        f"step {last['step']}: cooperation over choices "
        f"{coop if coop is None else round(coop, 3)}, "
        f"ties {last['edges']}, mutual {last['mutual_ties']}, gossip {last['gossip_count']}, "
        f"fallbacks {last['fallbacks']} of {last['decisions']} decisions"
    )


async def _report(store: Any, conversation_id: str, out: Path, steps: list[int] | None) -> None:
    from simulator.scenarios.reputation import snapshots
    from simulator.scenarios.reputation.metrics import write_reports

    stored = await snapshots(store, conversation_id)
    if not stored:
        raise ConfigurationError(f"conversation {conversation_id} has no stored steps")
    metrics = [m for _, m in stored]
    _print_last(metrics)
    _print_files(write_reports([s for s, _ in stored], metrics, out, steps))


async def _play(services: Services, conversation_id: str) -> Any:
    from simulator.scenarios.reputation import play

    return await play(services.store, services.backends, conversation_id)


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    import simulator.scenarios.reputation as reputation
    from simulator.commands.common import game_experiment
    from simulator.scenarios.reputation.params import load_params

    mix = parse_mix(args.mix) if args.mix else None
    if mix and args.model:
        raise ConfigurationError("use either --mix (scripted agents) or --model, not both")
    steps = _network_steps(args)

    if args.fast:
        if not mix:
            raise ConfigurationError("--fast needs scripted agents (--mix)")
        params = load_params(_game_params(args, {}))
        population = reputation.scripted_population(mix)

        async def fast() -> int:
            from simulator.scenarios.reputation.metrics import write_reports

            history: list[Any] = []
            state, metrics = await reputation.simulate(
                params, population, seed=args.seed, history=history
            )
            _print_last(metrics)
            out = Path(args.output or "reputation_fast")
            _print_files(write_reports(history, metrics, out, [state.step]))
            return 0

        return asyncio.run(fast())

    from simulator.commands.common import open_session

    async def go() -> int:
        async with open_session() as services:
            store, user = services.store, services.user
            if args.experiment:
                exp = await game_experiment(store, args.experiment, "reputation", user)
                game = load_params(_game_params(args, exp.game)).model_dump(mode="json")
                model = parse_model(args.model, args.latency_ms) if args.model else exp.models[0]
                roles = [r.name for r in exp.roles] or ["Agent"]
                n = int(game["population"])
                groups = [
                    (r, n // len(roles) + (1 if i < n % len(roles) else 0), model)
                    for i, r in enumerate(roles)
                ]
                # what runs is stored: a derived experiment with the options applied
                derived, cell = reputation.build_run(
                    game, groups, name=f"{exp.name} (CLI run)", owner=user, seed=args.seed
                )
                update: dict[str, Any] = {
                    "parent_id": exp.id,
                    "shared_sections": exp.shared_sections,
                }
                if exp.roles:
                    update["roles"] = exp.roles
                exp = derived.model_copy(update=update)
                await store.experiments.create(exp)
            else:
                game = load_params(_game_params(args, {})).model_dump(mode="json")
                if mix:
                    scripted = reputation.scripted_population(mix)
                    groups = [(g, c, scripted.models[g]) for g, c in scripted.groups]
                    for i, (g, c, m) in enumerate(groups):
                        if args.latency_ms:
                            opts = {**m.options, "latency_ms": args.latency_ms}
                            groups[i] = (g, c, m.model_copy(update={"options": opts}))
                else:
                    model = parse_model(args.model or "dryrun", args.latency_ms)
                    groups = [("Agent", int(game["population"]), model)]
                exp, cell = reputation.build_run(
                    game,
                    groups,
                    name=f"Reputation {game['game']} (CLI)",
                    owner=user,
                    seed=args.seed,
                )
                await store.experiments.create(exp)
            conv = await reputation.create_conversation(store, exp, cell, owner=user)
            print(f"conversation {conv.id}: playing {cell.rounds} steps...", flush=True)
            conv = await _play(services, conv.id)
            print(
                f"conversation {conv.id}: {conv.status.value}"
                + (f" ({conv.error})" if conv.error else "")
            )
            await _report(store, conv.id, _out(args, conv.id), steps)
            return 0 if conv.status.value == "done" else 1

    return asyncio.run(go())


def cmd_fork(args: argparse.Namespace) -> int:
    import simulator.scenarios.reputation as reputation
    from simulator.commands.common import game_conversation, open_session
    from simulator.domain import ModelSet

    steps = _network_steps(args)

    async def go() -> int:
        async with open_session() as services:
            store = services.store
            models = None
            src = await game_conversation(store, args.conversation, "reputation")
            if args.model:
                ref = parse_model(args.model)
                models = ModelSet(default=ref, per_role={r: ref for r in src.cell.counts})
            child = await reputation.fork(
                store,
                src.id,
                args.step,
                factors=_flags(args),
                models=models,
                steps=args.steps,
            )
            print(
                f"conversation {child.id}: forked from {src.id} after step {args.step}",
                flush=True,
            )
            conv = await _play(services, child.id)
            print(
                f"conversation {conv.id}: {conv.status.value}"
                + (f" ({conv.error})" if conv.error else "")
            )
            await _report(store, conv.id, _out(args, conv.id), steps)
            return 0 if conv.status.value == "done" else 1

    return asyncio.run(go())


def cmd_report(args: argparse.Namespace) -> int:
    from simulator.commands.common import game_conversation, open_session

    async def go() -> int:
        async with open_session() as services:
            store = services.store
            conv = await game_conversation(store, args.conversation, "reputation")
            await _report(store, conv.id, _out(args, conv.id), _network_steps(args))
            return 0

    return asyncio.run(go())
