"""``simulator public-goods run|report``: the public-goods game from the command line, declared
as data (``COMMANDS``) with handlers taking plain values (rendered by
simulator/commands/kinds.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.domain.errors import ConfigurationError
from simulator.scenarios.kind import Command, CommandContext, Commands, Option
from simulator.words import plural

ON_OFF = ("on", "off")
DEFAULT_MIX = "conditional_cooperator=2,free_rider=1,punisher=1"


def parse_mix(text: str) -> dict[str, int]:
    from simulator.scenarios.public_goods.scripted import KINDS

    out: dict[str, int] = {}
    for part in text.split(","):
        kind, sep, n = part.strip().partition("=")
        kind = kind.strip().removeprefix("public_goods.")
        if not sep or not n.strip().isdigit():
            raise ConfigurationError(f"--mix {text!r}: write KIND=N,... e.g. free_rider=1")
        if kind not in KINDS:
            raise ConfigurationError(f"--mix: {kind!r} is not a scripted kind ({', '.join(KINDS)})")
        out[kind] = out.get(kind, 0) + int(n)
    if sum(out.values()) < 2:
        raise ConfigurationError("--mix needs at least 2 members")
    return out


def parse_model(text: str) -> Any:
    from simulator.domain import ModelRef, Provider

    text = text.strip()
    if text == "dryrun":
        return ModelRef(provider=Provider.dryrun, model="dryrun")
    provider, sep, name = text.partition(":")
    if not sep or provider not in {p.value for p in Provider} or not name.strip():
        raise ConfigurationError(
            f"model {text!r}: write dryrun, ollama:NAME or openai:NAME (e.g. openai:gpt-4o-mini)"
        )
    return ModelRef(provider=Provider(provider), model=name.strip())


def game_params(base: dict[str, Any], settings: list[str], **options: Any) -> Any:
    """The parameters of a run: ``base`` with the options given (None: not given) applied."""
    from simulator.scenarios.public_goods.params import load_params

    data = dict(base)
    for key, value in options.items():
        if value is None:
            continue
        data[key] = (value == "on") if value in ON_OFF else value
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--set {item!r}: write KEY=VALUE")
        try:
            data[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            data[key.strip()] = value
    return load_params(data)


def _out(output: str | None, conversation_id: str) -> Path:
    return Path(output) if output else Path(f"public_goods_{conversation_id[:8]}")


def _print_state(state: Any, files: dict[str, Path]) -> None:
    from simulator.scenarios.public_goods.metrics import round_rows, run_summary

    means = [r["mean_contribution"] for r in round_rows(state)]
    shown = " ".join("-" if m is None else f"{m:.1f}" for m in means)
    print(f"mean contribution per round: {shown}")
    s = run_summary(state)
    print(
        f"{plural(s['rounds_played'], 'round')}, punishment "
        f"{'on' if s['punishment'] else 'off'}, spent on punishment {s['punishment_spent']:g}, "
        f"total earnings {s['total_earnings']:g}, {plural(s['fallbacks'], 'fallback')} of "
        f"{plural(s['decisions'], 'decision')}"
    )
    for name, path in files.items():
        print(f"{name}: {path}")


async def run(
    ctx: CommandContext,
    *,
    experiment: str | None,
    mix: str | None,
    model: str | None,
    members: int,
    rounds: int | None,
    seed: int,
    endowment: int | None,
    multiplier: float | None,
    punishment: str | None,
    cost: float | None,
    effect: float | None,
    max_points: int | None,
    identified: str | None,
    communication: str | None,
    set: list[str],
    fast: bool,
    output: str | None,
) -> int:
    from simulator.engine.conversation import prepare_conversation, run_conversation
    from simulator.scenarios.public_goods import metrics
    from simulator.scenarios.public_goods.params import check_group
    from simulator.scenarios.public_goods.runner import (
        cell_for,
        experiment_for,
        scripted_members,
        scripted_run,
        simulate,
    )

    if mix and (model or experiment):
        raise ConfigurationError("use --mix (scripted members) or --model/--experiment, not both")
    if members < 2:
        raise ConfigurationError("--members must be at least 2")
    options = {
        "rounds": rounds,
        "endowment": endowment,
        "multiplier": multiplier,
        "punishment": punishment,
        "punishment_cost": cost,
        "punishment_effect": effect,
        "max_points": max_points,
        "identified": identified,
        "communication": communication,
    }
    scripted = parse_mix(mix or DEFAULT_MIX) if not (model or experiment) else None

    if fast:
        if scripted is None:
            raise ConfigurationError("--fast needs scripted members (--mix)")
        params = game_params({}, set, **options)
        state = await simulate(params, scripted_members(scripted), seed=seed)
        out = Path(output or "public_goods_fast")
        _print_state(state, metrics.write_reports(state, "fast", out))
        return 0

    store, user = await ctx.store(), await ctx.user()
    if experiment:
        exp = await ctx.experiment(experiment)
        params = game_params(exp.game, set, **options)
        ref = parse_model(model) if model else exp.models[0]
        roles = [r.name for r in exp.roles] or ["Member"]
        counts = {
            r: members // len(roles) + (1 if i < members % len(roles) else 0)
            for i, r in enumerate(roles)
        }
        counts = {r: n for r, n in counts.items() if n > 0}
        derived = experiment_for(
            params, roles, name=f"{exp.name} (CLI run)", owner=user, models=[ref]
        )
        update: dict[str, Any] = {"parent_id": exp.id, "shared_sections": exp.shared_sections}
        if exp.roles:
            update["roles"] = exp.roles
        exp = derived.model_copy(update=update)
        cell = cell_for(counts, {r: ref for r in counts}, seed=seed, rounds=params.rounds)
    elif scripted is not None:
        params = game_params({}, set, **options)
        exp, cell = scripted_run(params, scripted, seed=seed, owner=user)
    else:
        params = game_params({}, set, **options)
        ref = parse_model(model or "dryrun")
        exp = experiment_for(params, name="Public goods (CLI)", owner=user, models=[ref])
        cell = cell_for({"Member": members}, {"Member": ref}, seed=seed, rounds=params.rounds)
    check_group(params, sum(cell.counts.values()))  # bad input: nothing stored
    await store.experiments.create(exp)
    conv = await prepare_conversation(store, exp, cell, owner=user)
    print(f"conversation {conv.id}: playing {plural(params.rounds, 'round')}...", flush=True)
    conv = await run_conversation(store, await ctx.backends(), conv.id)
    print(
        f"conversation {conv.id}: {conv.status.value}" + (f" ({conv.error})" if conv.error else "")
    )
    played = metrics.latest_state(await store.states.list(conv.id))
    if played is not None:
        _print_state(played, metrics.write_reports(played, conv.id, _out(output, conv.id)))
    return 0 if conv.status.value == "done" else 1


async def report(ctx: CommandContext, *, conversation: str, output: str | None) -> int:
    from simulator.scenarios.public_goods import metrics

    conv = await ctx.conversation(conversation)
    state = metrics.latest_state(await (await ctx.store()).states.list(conv.id))
    if state is None:
        raise ConfigurationError(f"conversation {conv.id} has no stored round yet")
    _print_state(state, metrics.write_reports(state, conv.id, _out(output, conv.id)))
    return 0


COMMANDS = Commands(
    name="public-goods",
    aliases=("public_goods",),
    help="the public-goods game with optional punishment: scripted or model runs, reports",
    description=(
        "A repeated public-goods game with optional costly punishment (Fehr and Gächter); see "
        "docs/public_goods.md."
    ),
    commands=(
        Command(
            "run",
            "play one public-goods game (scripted members, a model, or a stored experiment)",
            run,
            description=(
                "Play one game, store it like any conversation (every answer, one snapshot per "
                "round), and write rounds.csv, members.csv and summary.json to the output "
                "directory. Members are scripted dryrun policies (--mix, by default "
                f"{DEFAULT_MIX}), one model for everyone (--model, with --members), or a stored "
                "experiment's roles (--experiment)."
            ),
            options=(
                Option(("--experiment",), "a stored public-goods experiment", metavar="ID"),
                Option(
                    ("--mix",),
                    "scripted members, e.g. conditional_cooperator=2,free_rider=1,punisher=1 "
                    "(kinds: full_cooperator, conditional_cooperator, free_rider, punisher)",
                    metavar="KIND=N,...",
                ),
                Option(("--model",), "dryrun, ollama:NAME or openai:NAME", metavar="MODEL"),
                Option(
                    ("--members",), "members with --model or --experiment (4)", type=int, default=4
                ),
                Option(("--rounds",), "rounds (10)", type=int),
                Option(("--seed",), "the run's seed (0)", type=int, default=0),
                Option(("--endowment",), "tokens per member and round (20)", type=int),
                Option(("--multiplier",), "the pool's multiplier (1.6)", type=float),
                Option(("--punishment",), "the punishment stage (off)", choices=ON_OFF),
                Option(("--cost",), "tokens a deduction point costs its assigner (1)", type=float),
                Option(("--effect",), "tokens a deduction point takes (3)", type=float),
                Option(("--max-points",), "points per member and round (10)", type=int),
                Option(("--identified",), "members by name (off: anonymous)", choices=ON_OFF),
                Option(("--communication",), "a message stage (off)", choices=ON_OFF),
                Option(
                    ("--set",),
                    "any parameter, value as JSON (e.g. --set history_rounds=5)",
                    metavar="KEY=VALUE",
                    repeat=True,
                ),
                Option(
                    ("--fast",),
                    "scripted members only: play in-process without storing anything",
                    flag=True,
                ),
                Option(("-o", "--output"), "output directory (public_goods_<id>)", metavar="DIR"),
            ),
        ),
        Command(
            "report",
            "write rounds.csv, members.csv and summary.json of a stored run",
            report,
            options=(
                Option(("conversation",), metavar="CONVERSATION"),
                Option(("-o", "--output"), "output directory (public_goods_<id>)", metavar="DIR"),
            ),
        ),
    ),
)

__all__ = ["COMMANDS", "game_params", "parse_mix", "parse_model"]
