"""Writing analysis frames and transcripts to files.

Tables (messages, conversations, summaries, metrics, roles, agents, cells) go to CSV, JSONL or
Parquet; transcripts go to Markdown or plain text (one file per conversation, or one combined file)
and to one self-contained HTML file with a ``<section>`` per conversation, coloured by role.
Everything a model wrote is escaped in HTML: a transcript can never inject markup or script.

``export`` writes tables chunk by chunk (``loading.select`` / ``loading.chunks``): the rows of a
chunk are appended to the file (a Parquet row group, CSV rows, JSON lines) before the next chunk
is read, so its memory is bounded whatever the size of the selection. The per-conversation
tables (metrics, roles, agents, cells: one row per conversation or less) are computed chunk by
chunk and written at the end. ``write_table`` writes a frame already in memory.
"""

from __future__ import annotations

import colorsys
import functools
import html
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from simulator.analysis import metrics as m
from simulator.analysis.catalog import (
    EXTENSIONS,
    FORMATS,
    TABLE_FORMATS,
    TABLES,
    TRANSCRIPT_FORMATS,
)
from simulator.analysis.games import CLOCK_COLUMNS, CLOCKS, period_label
from simulator.analysis.loading import (
    AGENT_KINDS,
    Selection,
    chunks,
    conversations_frame,
    factor_columns,
    load_all,
    messages_frame,
    role_columns,
    select,
    typed,
)
from simulator.db.store import Store
from simulator.domain.errors import ConfigurationError, NotFoundError
from simulator.domain.filters import ConversationFilter

#: Colour of events no agent wrote (kickoff, system events); summaries have their own.
NEUTRAL_COLOR = "#5f6673"
SUMMARY_COLOR = "#8a6d1f"


# --------------------------------------------------------------------------- tables


def table(what: str, conversations: pd.DataFrame, messages: pd.DataFrame) -> pd.DataFrame:
    """The frame named ``what`` (one of TABLES) from the two loaded frames."""
    if what == "messages":
        return messages
    if what == "conversations":
        return conversations
    if what == "summaries":
        return messages[messages["kind"] == "summary"].reset_index(drop=True)
    if what == "roles":
        return m.role_metrics(messages)
    if what == "agents":
        return m.agent_metrics(messages)
    metrics = m.conversation_metrics(messages, conversations)
    if what == "metrics":
        return metrics
    if what == "cells":
        return m.cell_metrics(metrics)
    raise ConfigurationError(f"unknown table {what!r}; choose from {', '.join(TABLES)}")


def write_table(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write a frame as CSV, JSONL (one JSON object per line, ISO dates) or Parquet."""
    with TableWriter(path, fmt) as writer:
        writer.write(frame)
    return path


class TableWriter:
    """Appends frames of the same columns to one CSV, JSONL or Parquet file: CSV rows under
    one header, JSON lines, or one Parquet row group per frame (the first frame's schema, with
    pandas' metadata, so ``pandas.read_parquet`` gives back the frame's dtypes). A file is
    written even when every frame is empty (its header or schema)."""

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in ("csv", "jsonl", "parquet"):
            raise ConfigurationError(
                f"unknown table format {fmt!r}; choose from csv, jsonl, parquet"
            )
        self.path, self.fmt = path, fmt
        self.rows = 0
        self._columns: list[str] | None = None
        self._text: Any = None
        self._parquet: Any = None
        self._schema: Any = None

    def __enter__(self) -> TableWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.fmt != "parquet":
            self._text = self.path.open("w", encoding="utf-8", newline="")
        return self

    def write(self, frame: pd.DataFrame) -> None:
        first = self._columns is None
        if first:
            self._columns = list(frame.columns)
        elif list(frame.columns) != self._columns:
            frame = frame.reindex(columns=self._columns)  # a chunk lacking a column
        self.rows += len(frame)
        if self.fmt == "csv":
            frame.to_csv(self._text, index=False, header=first, lineterminator="\n")
        elif self.fmt == "jsonl":
            if len(frame):
                text = frame.to_json(
                    orient="records",
                    lines=True,
                    date_format="iso",
                    date_unit="ms",
                    force_ascii=False,
                )
                self._text.write(text if text.endswith("\n") else text + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if first:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self.path, self._schema)
            else:
                table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            self._parquet.write_table(table)

    def __exit__(self, *exc: object) -> None:
        if self._text is not None:
            self._text.close()
        if self._parquet is not None:
            self._parquet.close()
        elif self.fmt == "parquet" and exc[0] is None:  # nothing written: an empty table
            pd.DataFrame().to_parquet(self.path, index=False, engine="pyarrow")


# --------------------------------------------------------------------------- colours


def role_palette(roles: Iterable[str]) -> dict[str, str]:
    """A distinct, readable colour (``#rrggbb``) for any number of roles: hues step by the golden
    angle, so neighbours differ strongly and no two roles share a colour."""
    out: dict[str, str] = {}
    for i, role in enumerate(dict.fromkeys(roles)):
        hue = (0.58 + i * 0.381966) % 1.0  # the golden angle as a fraction of a turn
        lightness = 0.36 if (i // 8) % 2 == 0 else 0.46  # past 8 roles, vary lightness too
        out[role] = _hex(colorsys.hls_to_rgb(hue, lightness, 0.62))
    return out


@functools.lru_cache(maxsize=512)
def tint(color: str, amount: float = 0.9) -> str:
    """``color`` mixed with white (a light background of the same hue)."""
    rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    return _hex(tuple(c + (1 - c) * amount for c in rgb))


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in rgb)


def agent_roles(messages: pd.DataFrame) -> list[str]:
    """Roles that wrote agent messages, in order of first appearance."""
    agent = messages[messages["kind"].isin(AGENT_KINDS)]
    return [str(r) for r in dict.fromkeys(agent["role"].dropna())]


# --------------------------------------------------------------------------- transcripts


def _na(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v) or v is pd.NaT


Row: TypeAlias = Mapping[str, Any]


#: The message columns transcripts show.
_TRANSCRIPT_COLUMNS = (
    "conversation_id",
    "seq",
    "day",
    *CLOCK_COLUMNS,
    "turn",
    "speaker",
    "role",
    "kind",
    "public",
    "recipients",
    "content",
    "message_flags",
)


def _records(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts of plain values; column by column, which is far faster than ``iterrows``
    or ``to_dict`` on extension dtypes."""
    names = list(columns) if columns is not None else list(frame.columns)
    values = [frame[c].tolist() for c in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


Messages: TypeAlias = pd.DataFrame | Sequence[Row]


def _message_rows(messages: Messages) -> Sequence[Row]:
    if isinstance(messages, pd.DataFrame):
        return _records(messages, _TRANSCRIPT_COLUMNS)
    return messages


def _by_conversation(messages: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in _records(messages, _TRANSCRIPT_COLUMNS):
        out.setdefault(str(rec["conversation_id"]), []).append(rec)
    return out


def _row(conv: pd.Series | Row) -> Row:
    return conv.to_dict() if isinstance(conv, pd.Series) else conv


def _describe(conv: Row) -> list[tuple[str, str]]:
    """Labelled facts about a conversation for transcript headers."""
    factors = ", ".join(
        f"{c.removeprefix('factor_')}={conv[c]}"
        for c in conv
        if c.startswith("factor_") and not _na(conv[c])
    )
    facts = [
        ("Experiment", f"{_s(conv['experiment_name']) or '?'} ({conv['experiment_id']})"),
        ("Batch", _s(conv["batch_id"]) or "none"),
        ("Agents", f"{_s(conv['cell_counts'])} ({_s(conv['agents'])})"),
        ("Days", str(conv["days"])),
        (
            "Messages",
            f"{conv['messages_done']} of {conv['budget']}"
            if conv["experiment_kind"] == "dialogue"
            else str(conv["messages_done"]),
        ),
        ("Speaker selection", _s(conv["speaker_selection"])),
        ("Models", _s(conv["cell_models"])),
        ("Cell", f"{_s(conv['cell'])} (key {_s(conv['cell_key'])})"),
        ("Repeat / seed", f"{conv['repeat']} / {conv['seed']}"),
        ("Status", _s(conv["status"]) + (f": {conv['error']}" if not _na(conv["error"]) else "")),
    ]
    clock = CLOCKS.get(str(conv["experiment_kind"]))
    if clock is not None:  # a game has rounds or steps, no days and no speaker selection
        facts = [f for f in facts if f[0] not in ("Days", "Speaker selection")]
        if not _na(conv.get("rounds")):
            facts.insert(3, (f"{clock.capitalize()}s", str(conv["rounds"])))
    elif not _na(conv.get("rounds")):
        facts.insert(4, ("Rounds", str(conv["rounds"])))
    if factors:
        facts.insert(3, ("Factors", factors))
    return facts


def _s(v: Any) -> str:
    return "" if _na(v) else str(v)


def _title(conv: Row) -> str:
    return f"{_s(conv['experiment_name']) or 'Conversation'} · #{conv['conversation_number']}"


def _addressing(msg: Row) -> str:
    if bool(msg["public"]):
        return ""
    to = _s(msg["recipients"])
    return f" → {to}" if to else " (private)"  # no other participant sees it


def _period_title(msg: Row) -> tuple[tuple[str, int], str]:
    """The key of a message's day (round, step) and its separator's title."""
    name, n = period_label(msg)
    return (name, n), (f"{name} {n}" if n > 0 else f"Before {name.lower()} 1")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in (text.splitlines() or [""]))


def markdown_transcript(conv: pd.Series | Row, messages: Messages) -> str:
    """A conversation as Markdown: a header of facts, then the messages day by day. Each
    message's text is a block quote, so what a model wrote cannot break the page's structure."""
    conv = _row(conv)
    lines = [f"# {_title(conv)}", "", f"Conversation `{conv['conversation_id']}`", ""]
    lines += [f"- **{k}**: {v}" for k, v in _describe(conv)]
    day = None
    for msg in _message_rows(messages):
        key, label = _period_title(msg)
        if key != day:
            day = key
            lines += ["", f"## {label}"]
        lines.append("")
        if msg["kind"] == "summary":
            lines += [f"### Summary of day {msg['day']}", "", _quote(_s(msg["content"]))]
            continue
        who = f"**{msg['speaker']}**"
        if msg["kind"] in AGENT_KINDS:
            who += f" ({msg['role']}, turn {msg['turn']})"
        else:
            who += f" ({msg['kind']})"
        flags = f" _[{msg['message_flags']}]_" if _s(msg["message_flags"]) else ""
        lines += [f"{who}{_addressing(msg)}{flags}:", "", _quote(_s(msg["content"]))]
    return "\n".join(lines).rstrip() + "\n"


def text_transcript(conv: pd.Series | Row, messages: Messages) -> str:
    """A conversation as plain text."""
    conv = _row(conv)
    title = _title(conv)
    lines = [title, "=" * len(title), f"conversation {conv['conversation_id']}"]
    lines += [f"{k}: {v}" for k, v in _describe(conv)]
    day = None
    for msg in _message_rows(messages):
        key, label = _period_title(msg)
        if key != day:
            day = key
            lines += ["", f"--- {label} ---"]
        lines.append("")
        if msg["kind"] == "summary":
            lines += [f"[Summary of day {msg['day']}]", _s(msg["content"])]
            continue
        role = f" ({msg['role']})" if msg["kind"] in AGENT_KINDS else f" ({msg['kind']})"
        lines += [f"{msg['speaker']}{role}{_addressing(msg)}:", _s(msg["content"])]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 60rem; padding: 1rem 1.5rem; color: #1d2430; background: #fbfbfc; }
h1 { font-size: 1.4rem; margin: 0.2rem 0 0.6rem; }
nav ol { margin: 0.3rem 0 1rem; padding-left: 1.4rem; }
.legend { display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; margin-bottom: 1rem; }
.legend .swatch { display: inline-block; width: 0.9rem; height: 0.9rem; margin-right: 0.3rem;
  vertical-align: -0.1rem; border-radius: 2px; }
section.conversation { border-top: 3px solid #1d2430; padding-top: 0.6rem; margin-top: 1.2rem;
  break-after: page; page-break-after: always; }
nav.pager { float: right; font-size: 0.8rem; }
section.conversation h2 { font-size: 1.2rem; margin: 0.2rem 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 0.8rem;
  font-size: 0.85rem; margin: 0.4rem 0 0.8rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
h3.day-separator { font-size: 0.95rem; text-transform: uppercase; letter-spacing: 0.06em;
  color: #5f6673; border-bottom: 1px solid #c9ced6; margin: 1rem 0 0.5rem; padding-bottom: 0.2rem; }
.message { border-left: 8px solid var(--role-color); background: var(--role-tint);
  margin: 0.45rem 0; padding: 0.35rem 0.7rem; border-radius: 0 4px 4px 0; }
.message .who { font-weight: 700; color: var(--role-color); }
.message .about { color: #5f6673; font-size: 0.8rem; margin-left: 0.4rem; }
.message .content, .summary .content { white-space: pre-wrap; overflow-wrap: anywhere;
  margin-top: 0.2rem; }
.message.kind-kickoff, .message.kind-system { font-style: italic; }
.summary { border: 1px dashed var(--role-color); background: var(--role-tint);
  margin: 0.6rem 0; padding: 0.4rem 0.7rem; }
.summary h4 { margin: 0; font-size: 0.85rem; color: var(--role-color); }
.flag { font-size: 0.75rem; background: #fde68a; color: #5a4300; padding: 0 0.3rem;
  border-radius: 3px; margin-left: 0.3rem; }
"""


def html_document(
    conversations: pd.DataFrame, messages: pd.DataFrame, *, title: str = "Transcripts"
) -> str:
    """One self-contained HTML page: a table of contents, a colour legend, and one
    ``<section class="conversation">`` per conversation with day separators and summaries."""
    e = html.escape
    palette = role_palette(agent_roles(messages))
    by_conv = _by_conversation(messages)
    convs = _records(conversations)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f'<header id="top"><h1>{e(title)}</h1>',
        '<div class="legend">',
    ]
    for role, color in palette.items():
        parts.append(
            f'<span class="legend-role" data-role="{e(role)}" data-color="{color}">'
            f'<span class="swatch" style="background:{color}"></span>{e(role)}</span>'
        )
    parts.append("</div><nav><ol>")
    for conv in convs:
        parts.append(
            f'<li><a href="#c-{e(str(conv["conversation_id"]))}">{e(_title(conv))}</a> '
            f"({e(_s(conv['status']))})</li>"
        )
    parts.append("</ol></nav></header>")
    ids = [str(c["conversation_id"]) for c in convs]
    for i, conv in enumerate(convs):
        cid = ids[i]
        parts.append(
            f'<section class="conversation" id="c-{e(cid)}" data-conversation-id="{e(cid)}">'
        )
        links = ['<a href="#top">contents</a>']
        if i > 0:
            links.append(f'<a href="#c-{e(ids[i - 1])}">← previous</a>')
        if i + 1 < len(ids):
            links.append(f'<a href="#c-{e(ids[i + 1])}">next →</a>')
        parts.append(f'<nav class="pager">{" · ".join(links)}</nav>')
        parts.append(f'<h2>{e(_title(conv))}</h2><dl class="meta">')
        parts.append(f"<dt>Conversation</dt><dd><code>{e(cid)}</code></dd>")
        for k, v in _describe(conv):
            parts.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
        parts.append("</dl>")
        parts += _html_messages(by_conv.get(cid, []), palette)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_messages(messages: Messages, palette: dict[str, str]) -> list[str]:
    e = html.escape
    out: list[str] = []
    day = None
    for msg in _message_rows(messages):
        key, label = _period_title(msg)
        if key != day:
            day = key
            out.append(
                f'<h3 class="day-separator" data-{key[0].lower()}="{key[1]}">{e(label)}</h3>'
            )
        content = e(_s(msg["content"]))
        kind = e(str(msg["kind"]))
        if msg["kind"] == "summary":
            style = f"--role-color:{SUMMARY_COLOR};--role-tint:{tint(SUMMARY_COLOR, 0.92)}"
            out.append(
                f'<aside class="summary" data-day="{int(msg["day"])}" style="{style}">'
                f"<h4>Summary of day {int(msg['day'])}</h4>"
                f'<div class="content">{content}</div></aside>'
            )
            continue
        role = _s(msg["role"])
        color = palette.get(role, NEUTRAL_COLOR) if msg["kind"] in AGENT_KINDS else NEUTRAL_COLOR
        style = f"--role-color:{color};--role-tint:{tint(color)}"
        about = (
            f"{role}, {key[0].lower()} {key[1]} turn {msg['turn']}"
            if msg["kind"] in AGENT_KINDS
            else (str(msg["kind"]))
        )
        about += _addressing(msg)
        flags = "".join(
            f'<span class="flag">{e(f)}</span>' for f in _s(msg["message_flags"]).split(", ") if f
        )
        out.append(
            f'<article class="message kind-{kind}" data-role="{e(role)}" '
            f'data-color="{color}" data-seq="{int(msg["seq"])}" style="{style}">'
            f'<div><span class="who">{e(str(msg["speaker"]))}</span>'
            f'<span class="about">{e(about)}</span>{flags}</div>'
            f'<div class="content">{content}</div></article>'
        )
    return out


# --------------------------------------------------------------------------- files


def _is_file_target(output: Path | None, suffixes: Sequence[str]) -> bool:
    return output is not None and not output.is_dir() and output.suffix.lower() in suffixes


def write_transcripts(
    conversations: pd.DataFrame, messages: pd.DataFrame, fmt: str, output: Path | None
) -> list[Path]:
    """Markdown/text: one file per conversation in a directory (default ``transcripts``), or
    every conversation in one file when ``output`` names a ``.md``/``.txt`` file. HTML: one file
    (``output`` if it ends in ``.html``, else ``<output>/transcripts.html``)."""
    if fmt == "html":
        if _is_file_target(output, (".html", ".htm")):
            path = output
        else:
            path = (output or Path.cwd()) / "transcripts.html"
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        names = list(dict.fromkeys(conversations["experiment_name"].dropna().astype(str)))
        title = "Transcripts" + (f" · {', '.join(names)}" if 0 < len(names) <= 3 else "")
        path.write_text(html_document(conversations, messages, title=title), encoding="utf-8")
        return [path]
    render = markdown_transcript if fmt == "markdown" else text_transcript
    by_conv = _by_conversation(messages)
    texts = [
        (
            str(conv["conversation_id"]),
            render(conv, by_conv.get(str(conv["conversation_id"]), [])),
        )
        for conv in _records(conversations)
    ]
    ext = EXTENSIONS[fmt]
    if _is_file_target(output, (".md", ".markdown", ".txt", ".text")):
        assert output is not None
        output.parent.mkdir(parents=True, exist_ok=True)
        sep = "\n---\n\n" if fmt == "markdown" else "\n" + "#" * 72 + "\n\n"
        output.write_text(sep.join(t for _, t in texts), encoding="utf-8")
        return [output]
    folder = output or Path.cwd() / "transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for cid, text in texts:
        path = folder / f"{cid}{ext}"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def table_path(what: str, fmt: str, output: Path | None) -> Path:
    """Where a table goes: ``output`` when it names a file with the format's extension, else
    ``<output or .>/<what>.<ext>``."""
    ext = EXTENSIONS[fmt]
    if output is not None and not output.is_dir() and output.suffix.lower() == ext:
        return output
    if output is not None and output.suffix and not output.is_dir():
        raise ConfigurationError(
            f"output {str(output)!r} does not end in {ext} for format {fmt}; give a {ext} file "
            "or a directory"
        )
    return (output or Path.cwd()) / f"{what}{ext}"


async def export(
    store: Store,
    flt: ConversationFilter | None = None,
    *,
    fmt: str,
    what: str = "messages",
    output: Path | None = None,
) -> list[Path]:
    """Load what ``flt`` selects and write it; returns the files written. NotFoundError when no
    conversation matches (an empty export is almost always a mistyped filter)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if what not in TABLES:
        raise ConfigurationError(f"unknown table {what!r}; choose from {', '.join(TABLES)}")
    if fmt in TRANSCRIPT_FORMATS and what != "messages":
        raise ConfigurationError(
            f"--what {what} is a table: export it as csv, jsonl or parquet; {fmt} writes "
            "transcripts of the conversations"
        )
    if fmt in TRANSCRIPT_FORMATS:
        conversations, messages = await load_all(store, flt)
        if conversations.empty:
            raise NotFoundError("no conversation matches these filters; nothing was written")
        return write_transcripts(conversations, messages, fmt, output)
    selection = await select(store, flt)
    if not selection.ids:
        raise NotFoundError("no conversation matches these filters; nothing was written")
    path = table_path(what, fmt, output)
    kinds = (flt.kinds if flt is not None else None) or None
    with TableWriter(path, fmt) as writer:
        async for frame in _table_chunks(store, selection, what, kinds):
            writer.write(frame)
    return [path]


async def _table_chunks(
    store: Store, selection: Selection, what: str, kinds: Sequence[str] | None
) -> AsyncIterator[pd.DataFrame]:
    """The table ``what`` of the selection, in chunks to append in order; the tables of one row
    per conversation (or less) come as one frame once every chunk is read."""
    names = (selection.roles, selection.factors)
    exps = selection.experiments
    if what == "conversations":
        async for convs, _, stored in chunks(store, selection, messages=False):
            yield conversations_frame(convs, exps, stored, names=names)
        return
    if what in ("messages", "summaries"):
        wanted = ["summary"] if what == "summaries" else kinds
        async for convs, msgs, _ in chunks(store, selection, by_id=True, kinds=wanted):
            yield messages_frame(msgs, convs, exps, names=names)
        return
    parts: list[pd.DataFrame] = []
    async for convs, msgs, stored in chunks(store, selection, kinds=kinds):
        conversations = conversations_frame(convs, exps, stored, names=names)
        messages = messages_frame(msgs, convs, exps, names=names)
        parts.append(table("metrics" if what == "cells" else what, conversations, messages))
    frame = _concat(parts)
    if what in ("roles", "agents"):  # in (conversation_id, ...) order, as from one frame
        frame = frame.sort_values("conversation_id", kind="stable", ignore_index=True)
    yield m.cell_metrics(frame) if what == "cells" else frame


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of the same table, their columns united in order of appearance, typed once."""
    columns: dict[str, str] = {}
    for part in parts:
        for name, dtype in part.dtypes.items():
            columns.setdefault(str(name), str(dtype))
    whole = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return typed(whole, columns)


__all__ = [
    "FORMATS",
    "TABLES",
    "TABLE_FORMATS",
    "TRANSCRIPT_FORMATS",
    "agent_roles",
    "export",
    "factor_columns",
    "html_document",
    "markdown_transcript",
    "role_columns",
    "role_palette",
    "table",
    "text_transcript",
    "write_table",
    "write_transcripts",
]
