"""A conversation's transcript, coloured by role: any number of roles, day separators, summaries.

A game's time is not days: the separators name the kind's clock (``Kind.clock``: "Round 3",
"Step 2", as the exported transcripts do), which the screen hands over with ``set_clock``.

Self-contained (its own DEFAULT_CSS) so any screen can mount it: the conversation browser shows a
stored conversation with ``set_messages(messages)``; the run monitor appends live ones with
``add_message(message)``. It never reads the database itself.

Each role gets its own colour from ``role_palette`` (the colours of the HTML transcripts and the
figures), in the order of the ``roles`` given, so the same experiment always looks the same; roles
not given (a role added later, a game's own speakers) get the next colours in order of appearance.
Kickoff and system events are neutral and dim, summaries are boxed in their own colour, private
messages name their recipients. Annotations (``set_annotations``) are shown beside what they are
about: a dim line under each annotated message (a judge's answers, a scorer's highest scores),
and a box before the first message for the conversation's own (a judge's verdict, interviews).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text
from textual import events
from textual.widgets import RichLog

from simulator.domain import Message
from simulator.domain.annotations import Annotation
from simulator.domain.models import MessageKind
from simulator.engine.kinds import DAY

#: Colour of events no agent wrote (kickoff, system events); summaries have their own.
#: The same values as ``simulator.analysis.exports`` (kept in step by a test).
NEUTRAL_COLOR = "#5f6673"
SUMMARY_COLOR = "#8a6d1f"
ANNOTATION_COLOR = "#6b7a8f"
TOP_SCORES = 3  # a scorer's highest scores shown under a message
BAR = "▌ "
CHUNK = 16  # messages rendered at once (1-3 ms each)
CHUNK_PAUSE_S = 0.005


@functools.lru_cache(maxsize=64)
def _palette(roles: tuple[str, ...]) -> dict[str, str]:
    # Lazily: the analysis layer imports pandas, which a screen need not pay for at import time.
    from simulator.analysis.exports import role_palette

    return role_palette(roles)


async def prepare_colours() -> None:
    """Import the palette's module (pandas, ~1 s) in a thread, so the first transcript does not
    freeze the event loop; screens await it in a worker before showing one. Optional."""
    await asyncio.to_thread(_import_exports)


def _import_exports() -> None:
    import simulator.analysis.exports  # noqa: F401


class _Barred:
    """Text wrapped to the available width, each line behind a coloured bar."""

    def __init__(self, body: Text, color: str, bar: str = BAR) -> None:
        self.body = body
        self.color = color
        self.bar = bar

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        width = max(options.max_width - len(self.bar), 1)
        for line in self.body.wrap(console, width):
            yield Text.assemble((self.bar, self.color), line)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)


class _Flagged:
    """One annotation line under a message: a flag before its first line, its wrapped lines
    indented under it."""

    FLAG = "  ⚑ "

    def __init__(self, body: Text) -> None:
        self.body = body

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        width = max(options.max_width - len(self.FLAG), 1)
        for i, line in enumerate(self.body.wrap(console, width)):
            lead = self.FLAG if i == 0 else " " * len(self.FLAG)
            yield Text.assemble((lead, ANNOTATION_COLOR), line)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)


def _data_text(data: dict[str, Any]) -> str:
    return ", ".join(f"{key}: {value}" for key, value in data.items())


def _value_text(annotation: Annotation) -> str:
    if annotation.decision.value == "fallback":
        return "no valid answer (fallback)"
    if annotation.value is None:
        return "n/a"
    if isinstance(annotation.value, bool):
        return "true" if annotation.value else "false"
    return str(annotation.value)


def annotation_lines(annotations: Iterable[Annotation]) -> list[str]:
    """One line per annotator (and agent) of annotations about the same thing: a judge's
    ``question = answer`` pairs, a scorer's highest scores, an interview's question and answer.
    The version follows the annotator's name when several versions are shown."""
    annotations = list(annotations)
    versions: dict[str, set[str]] = {}
    for a in annotations:
        versions.setdefault(a.annotator, set()).add(a.annotator_version)
    groups: dict[tuple[str, str, str], list[Annotation]] = {}
    for a in annotations:
        groups.setdefault((a.annotator, a.annotator_version, a.agent or ""), []).append(a)
    lines: list[str] = []
    for (annotator, version, agent), group in groups.items():
        label = annotator if len(versions[annotator]) == 1 else f"{annotator}@{version}"
        if agent:
            label += f" · {agent}"
        parts: list[str] = []
        for a in group:
            if a.scores:
                top = sorted(a.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SCORES]
                text = ", ".join(f"{name} {score:.2f}" for name, score in top)
                flagged = (a.data or {}).get("flagged_categories")
                if a.value is True and flagged:
                    text += f" · flagged: {', '.join(flagged)}"
                parts.append(text)
            elif a.question and (a.kind == "interview" or len(_value_text(a)) > 40):
                parts.append(f"{a.question} — {_value_text(a)}")
            elif a.question:
                parts.append(f"{a.question} = {_value_text(a)}")
            else:
                parts.append(_value_text(a))
        lines.append(f"{label}: {'; '.join(parts)}")
    return lines


def kind_clock(kind: str | None) -> str:
    """What one unit of a kind's time is called (``Kind.clock``): ``day`` for a dialogue and
    for a kind this version does not know."""
    from simulator.scenarios.registry import KINDS

    return KINDS.get(kind).clock if kind and kind in KINDS else DAY


def period_title(clock: str, n: int | None) -> str:
    """A separator's words: "Day 2", "Round 3", "Step 1"; "Before round 1" before the first."""
    return f"{clock.capitalize()} {n}" if n else f"Before {clock} 1"


class TranscriptView(RichLog):
    """Read-only, scrollable transcript of one conversation."""

    DEFAULT_CSS = """
    TranscriptView {
        height: 1fr;
        padding: 0 1;
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-y: auto;
        overflow-x: hidden;
        /* room for the scrollbar from the start: lines are wrapped to a width that stays */
        scrollbar-gutter: stable;
    }
    TranscriptView:focus {
        background-tint: $foreground 3%;
    }
    """

    def __init__(
        self,
        roles: Iterable[str] = (),
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            wrap=True,
            min_width=1,
            markup=False,
            highlight=False,
            auto_scroll=True,
            name=name,
            id=id,
            classes=classes,
        )
        self._roles: list[str] = list(dict.fromkeys(roles))
        #: The messages shown, in ``seq`` order (tests and callers read it).
        self.messages: list[Message] = []
        self._seqs: set[int] = set()
        self._rendered_width = 0
        self._drawn = 0  # messages[:_drawn] are rendered
        self._generation = 0  # bumped by every redraw; stale chunks stop
        self._follow = False  # the redraw in progress keeps the end in view
        self._restore_share: float | None = None  # where the reader was (share of the lines)
        #: Annotations shown, by the seq they are about (None: the conversation, an agent).
        self.annotations: dict[int | None, list[Annotation]] = {}
        self._clock = DAY

    @property
    def clock(self) -> str:
        """What the separators call a unit of time (``day``, ``round``, ``step``)."""
        return self._clock

    # ------------------------------------------------------------------ API

    @property
    def roles(self) -> list[str]:
        """The roles in colour order: those given, then any others in order of appearance."""
        return list(self._roles)

    @property
    def role_colors(self) -> dict[str, str]:
        """Role -> colour (``#rrggbb``) of every role known so far."""
        return dict(_palette(tuple(self._roles)))

    def color_for(self, role: str) -> str:
        if role not in self._roles:
            self._roles.append(role)
        return _palette(tuple(self._roles))[role]

    def set_roles(self, roles: Iterable[str]) -> None:
        """Another experiment's roles (colours follow this order); redraws what is shown."""
        self._roles = list(dict.fromkeys(roles))
        self._redraw()

    def set_clock(self, clock: str) -> None:
        """Another kind's clock (``kind_clock``); redraws what is shown when it changes."""
        if clock != self._clock:
            self._clock = clock
            self._redraw()

    def set_messages(self, messages: Iterable[Message], *, scroll_end: bool = False) -> None:
        """Show these messages (one conversation's, any order) instead of what is shown, from
        the top (``scroll_end=True``: from the end, as a live view does)."""
        unique = {m.seq: m for m in messages}
        self.messages = [unique[seq] for seq in sorted(unique)]
        self._seqs = set(unique)
        self._redraw(scroll_end=scroll_end)

    def add_message(self, message: Message) -> None:
        """Append a message as it is stored; one already shown is ignored, one out of order
        (an earlier seq) is put in its place. The view follows new messages while the reader is
        at the end, and stays where they scrolled to otherwise."""
        if message.seq in self._seqs:
            return
        self._seqs.add(message.seq)
        follow = self._at_end()
        if self.messages and message.seq < self.messages[-1].seq:
            self.messages = sorted([*self.messages, message], key=lambda m: m.seq)
            self._redraw(scroll_end=follow)
            return
        if self.drawing:  # the redraw in progress reaches it
            self.messages.append(message)
            return
        self.messages.append(message)
        previous = self.messages[-2] if len(self.messages) > 1 else None
        for renderable in self._renderables(message, previous):
            self.write(renderable, expand=True, scroll_end=follow)
        self._drawn = len(self.messages)

    def clear_messages(self) -> None:
        self.messages = []
        self._seqs = set()
        self.annotations = {}
        self._redraw()

    def set_annotations(self, annotations: Iterable[Annotation]) -> None:
        """Show these annotations beside the messages they are about (instead of those shown);
        a redraw only when they changed."""
        grouped: dict[int | None, list[Annotation]] = {}
        # by annotator; within one, in the order given (the catalogue's question order)
        for a in sorted(annotations, key=lambda a: (a.annotator, a.annotator_version)):
            grouped.setdefault(a.seq, []).append(a)
        if grouped == self.annotations:
            return
        self.annotations = grouped
        # keep the reader's place: the end, or the top line's share of the whole
        at_end = self._size_known and self.scroll_y > 0 and self._at_end()
        if not at_end and self._size_known and self.scroll_y > 0:
            self._restore_share = self.scroll_y / max(len(self.lines), 1)
        self._redraw(scroll_end=at_end)

    @property
    def drawing(self) -> bool:
        """Whether some messages are still waiting to be rendered (a long transcript is drawn
        in chunks so the app stays responsive)."""
        return self._drawn < len(self.messages)

    def plain_lines(self) -> list[str]:
        """The rendered lines as plain text (what a reader sees, without colours)."""
        return ["".join(segment.text for segment in strip) for strip in self.lines]

    # ------------------------------------------------------------------ rendering

    def _at_end(self) -> bool:
        return not self._size_known or self.scroll_y >= self.max_scroll_y

    def _redraw(self, *, scroll_end: bool = False) -> None:
        self.clear()
        if not scroll_end and self._size_known:
            self.scroll_home(animate=False, immediate=True)
        self._generation += 1
        self._drawn = 0
        self._follow = scroll_end
        self._rendered_width = self.scrollable_content_region.width
        self._draw_chunk(self._generation)

    def _draw_chunk(self, generation: int) -> None:
        """Render the next CHUNK messages; schedule the rest, letting the loop breathe between
        chunks (a message takes 1-2 ms to wrap and render)."""
        if generation != self._generation:
            return
        end = min(self._drawn + CHUNK, len(self.messages))
        for index in range(self._drawn, end):
            previous = self.messages[index - 1] if index else None
            for renderable in self._renderables(self.messages[index], previous):
                self.write(renderable, expand=True, scroll_end=self._follow)
        self._drawn = end
        if self.drawing:
            self.set_timer(CHUNK_PAUSE_S, partial(self._draw_chunk, generation))
        elif self._restore_share is not None:
            y = round(self._restore_share * len(self.lines))
            self._restore_share = None
            self.scroll_to(y=y, animate=False, immediate=True)

    def on_resize(self, event: events.Resize) -> None:
        # Lines are wrapped when written: re-wrap them when the width changes, keeping the
        # reader's place (the end, or the top line's share of the whole).
        width = self.scrollable_content_region.width
        if not (self.messages and self._size_known and width != self._rendered_width):
            return
        at_end = self._at_end()
        self._restore_share = None if at_end else self.scroll_y / max(len(self.lines), 1)
        self._redraw(scroll_end=at_end)

    def _renderables(self, message: Message, previous: Message | None) -> list[RenderableType]:
        out: list[RenderableType] = []
        if previous is None and self.annotations.get(None):
            out.append(self._conversation_annotations(self.annotations[None]))
        if previous is None or message.day != previous.day:
            label = f" {period_title(self._clock, message.day)} "
            out.append(Rule(Text(label, style="bold"), style=NEUTRAL_COLOR, characters="─"))
        if message.kind is MessageKind.summary:
            out.append(self._summary(message))
        elif message.kind in (MessageKind.kickoff, MessageKind.system):
            out.append(self._event(message))
        else:
            out.append(self._agent(message))
        if self.annotations.get(message.seq):
            out.append(self._message_annotations(self.annotations[message.seq]))
        return out

    def _conversation_annotations(self, annotations: list[Annotation]) -> RenderableType:
        body = Text("\n".join(annotation_lines(annotations)), style=ANNOTATION_COLOR)
        return Panel(
            body,
            title=Text(" Annotations of the conversation ", style=f"bold {ANNOTATION_COLOR}"),
            title_align="left",
            border_style=ANNOTATION_COLOR,
            padding=(0, 1),
            expand=True,
        )

    def _message_annotations(self, annotations: list[Annotation]) -> RenderableType:
        style = f"italic {ANNOTATION_COLOR}"
        lines = annotation_lines(annotations)
        return _Group(*(_Flagged(Text(line, style=style)) for line in lines))

    def _summary(self, message: Message) -> RenderableType:
        title = Text(f" Summary of day {message.day} ", style=f"bold {SUMMARY_COLOR}")
        return Panel(
            Text(message.content.strip() or "(empty)"),
            title=title,
            title_align="left",
            border_style=SUMMARY_COLOR,
            padding=(0, 1),
            expand=True,
        )

    def _event(self, message: Message) -> RenderableType:
        label = "Kickoff" if message.kind is MessageKind.kickoff else "System"
        header = Text.assemble(
            (f" {label} ", f"bold #ffffff on {NEUTRAL_COLOR}"),
            (f"  {message.speaker}" if message.speaker else "", "dim"),
        )
        body = Text(message.content.strip(), style="italic dim")
        return _Group(header, _Barred(body, NEUTRAL_COLOR, "┊ "))

    def _agent(self, message: Message) -> RenderableType:
        color = self.color_for(message.role)
        header = Text.assemble((f" {message.speaker} ", f"bold #ffffff on {color}"))
        if message.role and not message.speaker.startswith(message.role):
            header.append(f" {message.role}", style=color)
        if message.kind is MessageKind.action:
            header.append("  action", style="italic")
        if message.recipients is not None:
            header.append("  → ", style="bold")
            header.append(", ".join(message.recipients) or "nobody", style="bold")
            header.append(" (private)", style="italic")
        for flag in message.flags:
            header.append(f"  [{flag}]", style="dim")
        header.append(f"  turn {message.turn}", style="dim")
        body = Text(message.content.strip())
        if message.data and not message.content.strip():
            body = Text(_data_text(message.data), style="italic")
        elif not message.content.strip():
            body = Text("(no text)", style="dim italic")
        return _Group(header, _Barred(body, color))


class _Group:
    """Renderables one after another (rich's Group, typed loosely for our few uses)."""

    def __init__(self, *parts: RenderableType) -> None:
        self.parts = parts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        yield from self.parts

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(options.max_width, options.max_width)
