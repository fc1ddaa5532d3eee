"""``simulator <kind> ...``: the command group of every experiment kind that declares one.

A kind declares its commands as data (``simulator.scenarios.kind.Commands``: names, help texts,
options) with handlers taking plain values; this module renders them into argparse and runs a
handler with a context that opens the database on first use through the composition root
(``commands.common.open_session``: a remembered login included; closed when the command ends),
so a kind's package imports neither argparse nor the services.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any

from simulator.domain import Conversation, Experiment
from simulator.domain.errors import ConfigurationError
from simulator.scenarios.kind import Command, Commands, Option

if TYPE_CHECKING:
    from simulator.db.store import Store
    from simulator.llm.registry import Backends
    from simulator.services.container import Services


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from simulator.scenarios.registry import KINDS

    for kind in KINDS:
        if kind.commands is not None:
            add_group(sub, kind.name, kind.commands)


def add_group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], kind: str, group: Commands
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        group.name, aliases=list(group.aliases), help=group.help, description=group.description
    )
    commands = parser.add_subparsers(
        dest=f"{group.name.replace('-', '_')}_command", metavar="COMMAND", required=True
    )
    for command in group.commands:
        one = commands.add_parser(
            command.name, help=command.help, description=command.description or None
        )
        for option in command.options:
            add_option(one, option)
        one.set_defaults(
            func=partial(run_handler, kind, command), uses_database=command.uses_database
        )
    return parser


def add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    kwargs: dict[str, Any] = {"help": option.help or None}
    if option.flag:
        kwargs["action"] = "store_true"
    else:
        if option.repeat:
            kwargs.update(action="append", default=[])
        else:
            kwargs["default"] = option.default
        if option.type is not None:
            kwargs["type"] = option.type
        if option.metavar is not None:
            kwargs["metavar"] = option.metavar
        if option.choices is not None:
            kwargs["choices"] = option.choices
    if option.positional:
        parser.add_argument(option.flags[0], **kwargs)
        return
    if option.required:
        kwargs["required"] = True
    parser.add_argument(*option.flags, dest=option.dest, **kwargs)


def run_handler(kind: str, command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` of ``kind`` with the parsed values (the ``func`` of its parser)."""
    from simulator.scenarios.registry import KINDS

    KINDS.prepare(kind)  # its scripted policies are models its commands may name
    values = {option.dest: getattr(args, option.dest) for option in command.options}

    async def go() -> int:
        async with Context(kind) as ctx:
            return int(await command.handler(ctx, **values))

    return asyncio.run(go())


class Context:
    """What a handler is given (``simulator.scenarios.kind.CommandContext``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._stack = contextlib.AsyncExitStack()
        self._services: Services | None = None

    async def __aenter__(self) -> Context:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._stack.__aexit__(*exc)

    async def _open(self) -> Services:
        if self._services is None:
            from simulator.commands.common import open_session

            self._services = await self._stack.enter_async_context(open_session())
        return self._services

    async def store(self) -> Store:
        return (await self._open()).store

    async def user(self) -> str:
        return (await self._open()).user

    async def backends(self) -> Backends:
        return (await self._open()).backends

    async def conversation(self, ref: str) -> Conversation:
        return await game_conversation(await self.store(), ref, self.kind)

    async def experiment(self, ref: str) -> Experiment:
        services = await self._open()
        return await game_experiment(services.store, ref, self.kind, services.user)


async def game_conversation(store: Any, ref: str, kind: str) -> Conversation:
    """The conversation ``ref`` names (an id or a unique prefix, ``db.ids``), which must be
    a run of the game ``kind``."""
    from simulator.db.ids import resolve_conversation
    from simulator.scenarios.registry import KINDS

    conv = await resolve_conversation(store, ref)
    if conv.kind.value != kind:
        other = KINDS.get(conv.kind).commands if conv.kind in KINDS else None
        reads = f"; 'simulator {other.name} ...' reads it" if other is not None else ""
        raise ConfigurationError(
            f"conversation {conv.id} is a {conv.kind.value} run, not a {kind} game{reads}"
        )
    return conv


async def game_experiment(store: Any, ref: str, kind: str, user: str | None = None) -> Experiment:
    """The experiment ``ref`` names (id, unique prefix or name), which must be of ``kind``."""
    from simulator.db.ids import resolve_experiment

    exp = await resolve_experiment(store, ref, user)
    if exp.kind.value != kind:
        raise ConfigurationError(f"experiment {exp.name!r} is not a {kind} game")
    return exp


__all__ = ["Context", "add_group", "add_option", "game_conversation", "game_experiment", "register"]
