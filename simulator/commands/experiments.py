"""``simulator experiments list|show|import|export|duplicate|delete|note|favourite``.

Every command goes through ExperimentService, so the CLI refuses exactly what the TUI refuses
(only the owner edits or deletes; anyone duplicates).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from simulator.words import plural

EPILOG = """\
examples:
  simulator experiments list --mine
  simulator experiments show "Prison study"
  simulator experiments export 3f2a9c1e -o prison.yaml
  simulator experiments import prison.yaml
  simulator experiments update 3f2a9c1e prison.yaml     # edit from a file (owner only)
  simulator experiments duplicate "Prison study" --name "My prison study"
  simulator experiments delete 3f2a9c1e --yes

An experiment is named by its id, a unique id prefix (4+ characters) or its exact name.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    exp = subparsers.add_parser(
        "experiments",
        help="list, show, import, export, duplicate and delete experiments",
        description=(
            "The experiment library, shared by everyone using the same database. Anyone can "
            "read, export, run and duplicate any experiment; only its owner can edit or delete it."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = exp.add_subparsers(dest="experiments_command", metavar="ACTION", required=True)

    p = sub.add_parser("list", help="the experiments, newest first")
    p.add_argument("--mine", action="store_true", help="only experiments you own")
    p.add_argument("--owner", help="only experiments of this user")
    p.add_argument("--search", metavar="TEXT", help="name or note contains TEXT")
    p.add_argument("--favourites", action="store_true", help="only favourites")
    p.set_defaults(func=cmd_list, uses_database=True)

    p = sub.add_parser("show", help="an experiment's definition (YAML) and placeholder check")
    p.add_argument("experiment", metavar="ID|NAME")
    p.set_defaults(func=cmd_show, uses_database=True)

    p = sub.add_parser("import", help="add an experiment from a YAML or JSON file (yours)")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_import, uses_database=True)

    p = sub.add_parser("export", help="write an experiment's definition to a YAML or JSON file")
    p.add_argument("experiment", metavar="ID|NAME")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the file (.json for JSON; default: <name>.yaml in the current directory)",
    )
    p.set_defaults(func=cmd_export, uses_database=True)

    p = sub.add_parser(
        "update",
        help="replace your experiment's definition with a file's (a new version once it has run)",
        description=(
            "Edit an experiment from a file (export it, change the file, update). Only its owner "
            "may. An experiment that already has conversations is not changed under them: the "
            "edit is saved as a new version (a new id whose parent is the old one)."
        ),
    )
    p.add_argument("experiment", metavar="ID|NAME")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_update, uses_database=True)

    p = sub.add_parser("duplicate", help="copy an experiment (anyone's) into your library")
    p.add_argument("experiment", metavar="ID|NAME")
    p.add_argument("--name", help="the copy's name (default: '<name> (copy)')")
    p.set_defaults(func=cmd_duplicate, uses_database=True)

    p = sub.add_parser(
        "delete", help="delete your experiment with its batches, conversations and messages"
    )
    p.add_argument("experiment", metavar="ID|NAME")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_delete, uses_database=True)

    p = sub.add_parser("note", help="set the note of your experiment")
    p.add_argument("experiment", metavar="ID|NAME")
    p.add_argument("text")
    p.set_defaults(func=cmd_note, uses_database=True)

    p = sub.add_parser("favourite", help="mark or unmark your experiment as a favourite")
    p.add_argument("experiment", metavar="ID|NAME")
    p.set_defaults(func=cmd_favourite, uses_database=True)


def _run(action: Callable[[Any], Awaitable[int]]) -> int:
    """Open the database as the current user and run ``action(service)``."""

    async def main() -> int:
        from simulator.commands.common import open_session

        async with open_session() as services:
            return await action(services.experiments)

    return asyncio.run(main())


def cmd_list(args: argparse.Namespace) -> int:
    from simulator.db.store import ExperimentFilter

    async def action(svc: Any) -> int:
        owner = svc.user if args.mine else args.owner
        rows = await svc.list(
            ExperimentFilter(text=args.search, owner=owner, favourites_only=args.favourites)
        )
        if not rows:
            print(
                "No experiments."
                + (
                    ""
                    if args.mine or args.owner or args.search
                    else " Import one with 'simulator experiments import FILE'."
                )
            )
            return 0
        table = [("ID", "NAME", "KIND", "OWNER", "RUNS", "VER", "UPDATED")]
        for row in rows:
            e = row.experiment
            star = "*" if e.favourite else ""
            table.append(
                (
                    e.id[:8],
                    star + e.name,
                    e.kind.value,
                    e.owner or "-",
                    str(row.conversations),
                    str(e.version),
                    e.updated_at.strftime("%Y-%m-%d %H:%M"),
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return 0

    return _run(action)


def cmd_show(args: argparse.Namespace) -> int:
    import yaml

    from simulator.roles import validate_experiment
    from simulator.services.files import experiment_to_data

    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        runs = (await svc.store.experiments.count_conversations([e.id]))[e.id]
        print(f"# {e.name}")
        print(f"# id {e.id}, version {e.version}, owner {e.owner or '-'}")
        if e.parent_id:
            print(f"# derived from {e.parent_id}")
        print(f"# conversations: {runs}")
        body = experiment_to_data(e)["experiment"]
        print(yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100), end="")
        issues = validate_experiment(e)
        if issues:
            print(f"# {plural(len(issues), 'placeholder problem')}:")
            for issue in issues:
                print(f"#   {issue}")
        return 0

    return _run(action)


def cmd_import(args: argparse.Namespace) -> int:
    async def action(svc: Any) -> int:
        e = await svc.import_file(args.file)
        print(f"Imported {e.name!r} as {e.id} (yours).")
        return 0

    return _run(action)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "experiment"


def cmd_export(args: argparse.Namespace) -> int:
    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        path = args.output or Path(f"{_slug(e.name)}.yaml")
        written = await svc.export(e.id, path)
        print(f"Wrote {e.name!r} to {written}")
        return 0

    return _run(action)


def cmd_update(args: argparse.Namespace) -> int:
    from simulator.services.files import read_experiment

    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        edited = read_experiment(args.file)
        keep = {"id": e.id, "owner": e.owner, "version": e.version, "parent_id": e.parent_id}
        keep |= {"created_at": e.created_at, "favourite": e.favourite}
        saved = await svc.save(edited.model_copy(update=keep))
        if saved.id == e.id:
            print(f"Updated {saved.name!r} ({saved.id}), now version {saved.version}.")
        else:
            print(
                f"{e.name!r} has conversations, so the edit is a new version: {saved.id} "
                f"(version {saved.version}, derived from {e.id})."
            )
        return 0

    return _run(action)


def cmd_duplicate(args: argparse.Namespace) -> int:
    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        copy = await svc.duplicate(e.id, args.name)
        print(f"Duplicated {e.name!r} as {copy.name!r} ({copy.id}), owned by {copy.owner}.")
        return 0

    return _run(action)


def cmd_delete(args: argparse.Namespace) -> int:
    from simulator.services.ownership import require_owner

    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        # Refuse before asking: a non-owner is never asked to confirm a delete they cannot do.
        require_owner(e.owner, svc.user, "delete", f"experiment {e.name!r}")
        if not args.yes:
            runs = (await svc.store.experiments.count_conversations([e.id]))[e.id]
            if not sys.stdin.isatty():
                print(
                    "error: not confirmed: add --yes to delete without a question", file=sys.stderr
                )
                return 2
            answer = await asyncio.to_thread(
                input,
                f"Delete {e.name!r} ({e.id[:8]}) with its {plural(runs, 'conversation')}? [y/N] ",
            )
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing deleted.")
                return 1
        await svc.delete(e.id)
        print(f"Deleted {e.name!r} ({e.id}).")
        return 0

    return _run(action)


def cmd_note(args: argparse.Namespace) -> int:
    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        await svc.set_note(e.id, args.text)
        print(f"Note of {e.name!r} set.")
        return 0

    return _run(action)


def cmd_favourite(args: argparse.Namespace) -> int:
    async def action(svc: Any) -> int:
        e = await svc.find(args.experiment)
        updated = await svc.toggle_favourite(e.id)
        state = "now a favourite" if updated.favourite else "no longer a favourite"
        print(f"{e.name!r} is {state}.")
        return 0

    return _run(action)
