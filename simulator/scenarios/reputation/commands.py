"""``simulator reputation run|fork|report``: the reputation games from the command line, declared
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

#: Treatment options and the parameter each sets (``--observation`` is ``public_observation``).
TREATMENTS = {
    "reputation": "reputation",
    "gossip": "gossip",
    "observation": "public_observation",
    "persona_rewrite": "persona_rewrite",
}


# --------------------------------------------------------------------------- parsing


def treatment_flags(**given: str | None) -> dict[str, str]:
    """Treatment flags as factor levels (the fork's way of changing parameters)."""
    return {TREATMENTS[k]: v for k, v in given.items() if v is not None}


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


def game_params(
    base: dict[str, Any],
    *,
    preset: str | None,
    game: str | None,
    population: int | None,
    steps: int | None,
    flags: dict[str, str],
    settings: list[str],
    personas: str | None,
) -> dict[str, Any]:
    data = dict(base)
    if preset:
        data["preset"] = preset
    for key, value in (("game", game), ("population", population), ("steps", steps)):
        if value is not None:
            data[key] = value
    for key, level in flags.items():
        data[key] = level == "on"
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--set {item!r}: write KEY=VALUE")
        try:
            data[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            data[key.strip()] = value
    if personas:
        from simulator.scenarios.reputation.personas import load_personas_file

        data["personas"] = load_personas_file(personas)
    return data


def parse_network_steps(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigurationError("--network-steps: write step numbers, e.g. 1,5,10") from None


def _out(output: str | None, conversation_id: str) -> Path:
    return Path(output) if output else Path(f"reputation_{conversation_id[:8]}")


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
    from simulator.scenarios.reputation.metrics import write_reports
    from simulator.scenarios.reputation.runner import snapshots

    stored = await snapshots(store, conversation_id)
    if not stored:
        raise ConfigurationError(f"conversation {conversation_id} has no stored steps")
    metrics = [m for _, m in stored]
    _print_last(metrics)
    _print_files(write_reports([s for s, _ in stored], metrics, out, steps))


async def _play(ctx: CommandContext, conversation_id: str) -> Any:
    """Play the conversation with the session's model backends (closed with the session)."""
    from simulator.scenarios.reputation.runner import play

    return await play(await ctx.store(), await ctx.backends(), conversation_id)


def _print_status(conv: Any) -> None:
    print(
        f"conversation {conv.id}: {conv.status.value}" + (f" ({conv.error})" if conv.error else "")
    )


# --------------------------------------------------------------------------- commands


async def run(
    ctx: CommandContext,
    *,
    experiment: str | None,
    game: str | None,
    population: int | None,
    steps: int | None,
    seed: int,
    preset: str | None,
    reputation: str | None,
    gossip: str | None,
    observation: str | None,
    persona_rewrite: str | None,
    set: list[str],
    personas: str | None,
    mix: str | None,
    model: str | None,
    latency_ms: float,
    fast: bool,
    output: str | None,
    network_steps: str | None,
) -> int:
    from simulator.scenarios.reputation.params import load_params
    from simulator.scenarios.reputation.runner import (
        build_run,
        create_conversation,
        scripted_population,
        simulate,
    )

    mixed = parse_mix(mix) if mix else None
    if mixed and model:
        raise ConfigurationError("use either --mix (scripted agents) or --model, not both")
    drawn = parse_network_steps(network_steps)
    flags = treatment_flags(
        reputation=reputation,
        gossip=gossip,
        observation=observation,
        persona_rewrite=persona_rewrite,
    )
    options: dict[str, Any] = {
        "preset": preset,
        "game": game,
        "population": population,
        "steps": steps,
        "flags": flags,
        "settings": set,
        "personas": personas,
    }

    if fast:
        if not mixed:
            raise ConfigurationError("--fast needs scripted agents (--mix)")
        from simulator.scenarios.reputation.metrics import write_reports

        params = load_params(game_params({}, **options))
        history: list[Any] = []
        state, metrics = await simulate(
            params, scripted_population(mixed), seed=seed, history=history
        )
        _print_last(metrics)
        out = Path(output or "reputation_fast")
        _print_files(write_reports(history, metrics, out, [state.step]))
        return 0

    store, user = await ctx.store(), await ctx.user()
    if experiment:
        exp = await ctx.experiment(experiment)
        played = load_params(game_params(exp.game, **options)).model_dump(mode="json")
        ref = parse_model(model, latency_ms) if model else exp.models[0]
        roles = [r.name for r in exp.roles] or ["Agent"]
        n = int(played["population"])
        groups = [
            (r, n // len(roles) + (1 if i < n % len(roles) else 0), ref)
            for i, r in enumerate(roles)
        ]
        # what runs is stored: a derived experiment with the options applied
        derived, cell = build_run(
            played, groups, name=f"{exp.name} (CLI run)", owner=user, seed=seed
        )
        update: dict[str, Any] = {"parent_id": exp.id, "shared_sections": exp.shared_sections}
        if exp.roles:
            update["roles"] = exp.roles
        exp = derived.model_copy(update=update)
        await store.experiments.create(exp)
    else:
        played = load_params(game_params({}, **options)).model_dump(mode="json")
        if mixed:
            scripted = scripted_population(mixed)
            groups = [(g, c, scripted.models[g]) for g, c in scripted.groups]
            for i, (g, c, m) in enumerate(groups):
                if latency_ms:
                    opts = {**m.options, "latency_ms": latency_ms}
                    groups[i] = (g, c, m.model_copy(update={"options": opts}))
        else:
            groups = [
                ("Agent", int(played["population"]), parse_model(model or "dryrun", latency_ms))
            ]
        exp, cell = build_run(
            played,
            groups,
            name=f"Reputation {played['game']} (CLI)",
            owner=user,
            seed=seed,
        )
        await store.experiments.create(exp)
    conv = await create_conversation(store, exp, cell, owner=user)
    length = plural(cell.rounds, "step") if cell.rounds else "the game's steps"
    print(f"conversation {conv.id}: playing {length}...", flush=True)
    conv = await _play(ctx, conv.id)
    _print_status(conv)
    await _report(store, conv.id, _out(output, conv.id), drawn)
    return 0 if conv.status.value == "done" else 1


async def fork(
    ctx: CommandContext,
    *,
    conversation: str,
    step: int,
    steps: int | None,
    model: str | None,
    reputation: str | None,
    gossip: str | None,
    observation: str | None,
    persona_rewrite: str | None,
    output: str | None,
    network_steps: str | None,
) -> int:
    from simulator.domain import ModelSet
    from simulator.scenarios.reputation.runner import fork as fork_run

    drawn = parse_network_steps(network_steps)
    store = await ctx.store()
    models = None
    src = await ctx.conversation(conversation)
    if model:
        ref = parse_model(model)
        models = ModelSet(default=ref, per_role={r: ref for r in src.cell.counts})
    flags = treatment_flags(
        reputation=reputation,
        gossip=gossip,
        observation=observation,
        persona_rewrite=persona_rewrite,
    )
    child = await fork_run(store, src.id, step, factors=flags, models=models, steps=steps)
    print(f"conversation {child.id}: forked from {src.id} after step {step}", flush=True)
    conv = await _play(ctx, child.id)
    _print_status(conv)
    await _report(store, conv.id, _out(output, conv.id), drawn)
    return 0 if conv.status.value == "done" else 1


async def report(
    ctx: CommandContext, *, conversation: str, output: str | None, network_steps: str | None
) -> int:
    conv = await ctx.conversation(conversation)
    drawn = parse_network_steps(network_steps)
    await _report(await ctx.store(), conv.id, _out(output, conv.id), drawn)
    return 0


# --------------------------------------------------------------------------- the declaration

TREATMENT_OPTIONS = (
    Option(("--reputation",), "reputation records (on)", choices=ON_OFF),
    Option(("--gossip",), "gossip (on)", choices=ON_OFF),
    Option(
        ("--observation",),
        "public observation channel (default: on for investment with reputation and gossip)",
        choices=ON_OFF,
    ),
    Option(("--persona-rewrite",), "persona rewrite (on)", choices=ON_OFF),
)

REPORT_OPTIONS = (
    Option(("-o", "--output"), "output directory (reputation_<id>)", metavar="DIR"),
    Option(("--network-steps",), "steps to draw the network at (default: last)", metavar="N,..."),
)

COMMANDS = Commands(
    name="reputation",
    help="reputation games: investment, prisoner's dilemma, sign-up (run, fork, report)",
    description="Reputation games on a social network with gossip; see docs/reputation.md.",
    commands=(
        Command(
            "run",
            "run a reputation game (scripted agents or a model) and write metrics and plots",
            run,
            description=(
                "Play one reputation game, store it like any conversation (every decision, one "
                "snapshot per step), and write metrics.csv, agents.csv, cooperation.png, "
                "network_step<N>.png and reputation_heatmap.png to the output directory. Agents "
                "are scripted dryrun policies (--mix) or one model for everyone (--model)."
            ),
            options=(
                Option(("--experiment",), "a stored reputation experiment", metavar="ID"),
                Option(("--game",), "the game", choices=("investment", "pd", "signup")),
                Option(("--population",), "agents (default 20; with --mix: its total)", type=int),
                Option(("--steps",), "steps (default 10)", type=int),
                Option(("--seed",), "the run's seed (0)", type=int, default=0),
                Option(
                    ("--preset",),
                    "repunet: the published design (its personas per game, wording, update "
                    "inputs, history windows, temperature 0); options given here still apply "
                    "(see docs/reputation.md)",
                    choices=("neutral", "repunet"),
                ),
                *TREATMENT_OPTIONS,
                Option(
                    ("--set",),
                    "any parameter, value as JSON (e.g. --set k=3 --set blacklist_size=10)",
                    metavar="KEY=VALUE",
                    repeat=True,
                ),
                Option(("--personas",), "personas from a YAML/JSON file", metavar="FILE"),
                Option(
                    ("--mix",),
                    "scripted agents, e.g. reputation_following=15,always_defect=5 (kinds: "
                    "always_cooperate, always_defect, tit_for_tat, reputation_following)",
                    metavar="KIND=N,...",
                ),
                Option(
                    ("--model",),
                    "dryrun, ollama:NAME or openai:NAME for every agent",
                    metavar="MODEL",
                ),
                Option(("--latency-ms",), "dryrun latency per call", type=float, default=0),
                Option(
                    ("--fast",),
                    "scripted agents only: play in-process without storing anything",
                    flag=True,
                ),
                *REPORT_OPTIONS,
            ),
        ),
        Command(
            "fork",
            "continue a stored run from a step with changed flags, models or step count",
            fork,
            description=(
                "Copy a conversation up to the end of --step into a new conversation, change "
                "the treatment flags, the model or the step count, and play the rest."
            ),
            options=(
                Option(("conversation",), metavar="CONVERSATION_ID"),
                Option(("--step",), "fork after this step", type=int, required=True),
                Option(("--steps",), "new total step count", type=int),
                Option(("--model",), "a new model for every agent", metavar="MODEL"),
                *TREATMENT_OPTIONS,
                *REPORT_OPTIONS,
            ),
        ),
        Command(
            "report",
            "write the metrics table and plots of a stored reputation run",
            report,
            options=(Option(("conversation",), metavar="CONVERSATION_ID"), *REPORT_OPTIONS),
        ),
    ),
)

__all__ = ["COMMANDS", "game_params", "parse_mix", "parse_model", "treatment_flags"]
