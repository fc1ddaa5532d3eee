"""``simulator cache stats|export|import|clear``: the response cache, shared as a file.

A lab exports its cache with a paper (JSONL, or Parquet); another lab imports it and reruns the
batches without paying for the answers (docs/cost.md). An import merges: answers whose key is
stored already are left as they are, so importing a file twice changes nothing.

JSONL files start with a header line ``{"format": "llm-interaction-simulator/responses",
"version": 1}``, then one answer per line (``CachedResponse``). Parquet files hold one row per
answer, nested fields as JSON text, and the same format in their metadata.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.domain import CachedResponse
from simulator.domain.errors import ConfigurationError, SpecError

FORMAT = "llm-interaction-simulator/responses"
VERSION = 1
CHUNK = 1000  # answers per write (export) or insert (import)
#: CachedResponse fields a Parquet file keeps as JSON text (nested values).
_NESTED = ("replicate", "params", "usage", "sent_params", "dropped_params", "model_ref")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = sub.add_parser(
        "cache",
        help="the response cache: statistics, export and import (to share it), clear",
        description=(
            "The response cache holds model answers by key (docs/cost.md): batches run with "
            "'cache: reuse' serve them instead of calling the model again."
        ),
    )
    actions = cache.add_subparsers(dest="action", metavar="ACTION", required=True)

    stats = actions.add_parser("stats", help="answers and tokens by provider and model")
    stats.set_defaults(func=cmd_stats, uses_database=True)

    export = actions.add_parser(
        "export", help="write every answer to a file (JSONL, or Parquet for a .parquet name)"
    )
    export.add_argument("file", metavar="FILE", type=Path, help="e.g. cache.jsonl or cache.parquet")
    export.set_defaults(func=cmd_export, uses_database=True)

    imp = actions.add_parser(
        "import", help="merge the answers of a file (answers stored already are kept)"
    )
    imp.add_argument("file", metavar="FILE", type=Path, help="a file written by 'cache export'")
    imp.set_defaults(func=cmd_import, uses_database=True)

    clear = actions.add_parser("clear", help="delete answers (all, or one model's)")
    clear.add_argument("--model", metavar="NAME", help="only this model's answers")
    clear.add_argument("--provider", metavar="NAME", help="only this provider's answers")
    clear.add_argument(
        "-y", "--yes", action="store_true", help="delete without asking (asked only at a terminal)"
    )
    clear.set_defaults(func=cmd_clear, uses_database=True)


# --------------------------------------------------------------------------- commands


def cmd_stats(args: argparse.Namespace) -> int:
    return asyncio.run(_stats())


async def _stats() -> int:
    from rich.table import Table

    from simulator.commands.common import open_session
    from simulator.commands.run import _console

    console = _console()
    async with open_session() as services:
        store = services.store
        rows = await store.responses.stats()
    if not rows:
        console.print("The response cache is empty.")
        return 0
    table = Table(title="Response cache")
    table.add_column("provider")
    table.add_column("model")
    for col in ("answers", "prompt tokens", "completion tokens"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["provider"],
            r["model"],
            f"{r['answers']:,}",
            f"{r['prompt_tokens']:,}",
            f"{r['completion_tokens']:,}",
        )
    console.print(table)
    total = sum(r["answers"] for r in rows)
    console.print(f"{total:,} answers in all.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    path: Path = args.file
    _writable(path)
    n = asyncio.run(_export(path))
    print(f"{n:,} answers written to {path}")
    return 0


async def _export(path: Path) -> int:
    from simulator.commands.common import open_session

    async with open_session() as services:
        store = services.store
        answers = store.responses.iterate(CHUNK)
        if _is_parquet(path):
            return await write_parquet(path, answers)
        return await write_jsonl(path, answers)


def cmd_import(args: argparse.Namespace) -> int:
    path: Path = args.file
    total = sum(len(chunk) for chunk in read_file(path))  # the whole file is checked first
    new = asyncio.run(_import(path))
    print(f"{total:,} answers read from {path}: {new:,} new, {total - new:,} already stored")
    return 0


async def _import(path: Path) -> int:
    from simulator.commands.common import open_session

    new = 0
    async with open_session() as services:
        store = services.store
        for chunk in read_file(path):
            new += await store.responses.insert_many(chunk)
    return new


def cmd_clear(args: argparse.Namespace) -> int:
    which = " and ".join(
        part
        for part in (
            f"model {args.model!r}" if args.model else "",
            f"provider {args.provider!r}" if args.provider else "",
        )
        if part
    )
    what = f"the cached answers of {which}" if which else "every cached answer"
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete {what}? Reruns will call the models again. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 0
    n = asyncio.run(_clear(args.model, args.provider))
    print(f"{n:,} cached answers deleted.")
    return 0


async def _clear(model: str | None, provider: str | None) -> int:
    from simulator.commands.common import open_session

    async with open_session() as services:
        store = services.store
        return int(await store.responses.clear(model=model, provider=provider))


# --------------------------------------------------------------------------- files


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _writable(path: Path) -> None:
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory; give a file name such as cache.jsonl")
    if not path.parent.exists():
        raise ConfigurationError(f"{path.parent} does not exist; create it first")


async def write_jsonl(path: Path, answers: AsyncIterator[CachedResponse]) -> int:
    """The header line, then one answer per line, written as they are read."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
        async for answer in answers:
            out.write(json.dumps(answer.model_dump(mode="json"), ensure_ascii=False) + "\n")
            n += 1
    return n


def _row(answer: CachedResponse) -> dict[str, Any]:
    data = answer.model_dump(mode="json")
    for name in _NESTED:
        data[name] = json.dumps(data[name], ensure_ascii=False, sort_keys=True)
    return data


async def write_parquet(path: Path, answers: AsyncIterator[CachedResponse]) -> int:
    """One row per answer, written a chunk at a time (memory stays bounded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_types = {
        "seed": pa.int64(),
        "attempts": pa.int64(),
        "prompt_tokens_total": pa.int64(),
        "latency_ms": pa.float64(),
    }

    schema = pa.schema(
        [(name, arrow_types.get(name, pa.string())) for name in CachedResponse.model_fields],
        metadata={b"format": FORMAT.encode(), b"version": str(VERSION).encode()},
    )
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        rows: list[dict[str, Any]] = []
        async for answer in answers:
            rows.append(_row(answer))
            if len(rows) >= CHUNK:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                n, rows = n + len(rows), []
        if rows or n == 0:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            n += len(rows)
    return n


def read_file(path: Path) -> Iterator[list[CachedResponse]]:
    """The answers of a file written by ``cache export``, a chunk at a time; a file that is not
    one (or a line that is not an answer) is a SpecError naming it."""
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    if _is_parquet(path):
        return _read_parquet(path)
    return _read_jsonl(path)


def _answer(data: Any, where: str) -> CachedResponse:
    try:
        return CachedResponse.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "(answer)"
        raise SpecError(f"{where}: {field}: {first.get('msg', 'invalid')}") from None


def _read_jsonl(path: Path) -> Iterator[list[CachedResponse]]:
    with path.open(encoding="utf-8") as lines:
        header = _json_line(lines.readline(), f"{path} line 1")
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise SpecError(
                f"{path} line 1: not a response cache file (a file written by 'simulator "
                f'cache export\' starts with {{"format": "{FORMAT}", ...}})'
            )
        if int(header.get("version", 0)) > VERSION:
            raise SpecError(f"{path}: written by a newer version (format version "
                            f"{header.get('version')}; this one reads {VERSION})")  # fmt: skip
        chunk: list[CachedResponse] = []
        for number, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            chunk.append(
                _answer(_json_line(line, f"{path} line {number}"), f"{path} line {number}")
            )
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _json_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not JSON ({exc.msg})") from None


def _read_parquet(path: Path) -> Iterator[list[CachedResponse]]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except Exception as exc:
        raise SpecError(f"{path}: not a Parquet file ({exc})") from None
    metadata = file.schema_arrow.metadata or {}
    if metadata.get(b"format") != FORMAT.encode():
        raise SpecError(f"{path}: not a response cache file (no format {FORMAT!r} in it)")
    row_number = 0
    for batch in file.iter_batches(batch_size=CHUNK):
        chunk = []
        for row in batch.to_pylist():
            row_number += 1
            where = f"{path} row {row_number}"
            for name in _NESTED:
                if isinstance(row.get(name), str):
                    row[name] = _json_line(row[name], f"{where} {name}")
            chunk.append(_answer(row, where))
        yield chunk


__all__ = ["FORMAT", "read_file", "register", "write_jsonl", "write_parquet"]
