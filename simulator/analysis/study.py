"""One study's data for statistics and figures: conversations (with their metrics), agent
messages, and every annotation beside them; and the names a researcher uses for what to model.

Two tables, each with the grid cell and study factors of every row:

- ``conversation_table``: one row per conversation, its metrics (``metrics.conversation_metrics``)
  and every annotation about the whole conversation as a column (the wide annotation table's
  ``<annotator>.<question>``: ``judge:persuasion.goal_achieved``, ``human:persuasion.goal_third``);
- ``message_table``: one row per agent message, with ``agent_turn`` (its position among the
  conversation's agent messages, from 1), ``role_turn`` (among its role's, from 1) and every
  annotation about that message as a column (``moderation.harassment``,
  ``python:tests.scorers:lengths.words``).

An **outcome** or **score** is named by such a column, or a metric (``mean_words``,
``turn_share_guard``; ``words``, ``completion_tokens`` per message), optionally turned into a
yes/no answer: ``NAME=LEVEL`` (the answer equals LEVEL, case-insensitive) or ``NAME>X`` (a score
above X, e.g. ``moderation.harassment>0.5``, a "toxic" message). A missing answer (a fallback, a
question that did not apply) stays missing, never "no".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simulator.analysis import metrics as m
from simulator.analysis.loading import (
    BOOL,
    column_key,
    count_column,
    factor_column,
    load_all,
)
from simulator.domain.errors import ConfigurationError
from simulator.domain.filters import ConversationFilter


class StudyError(ConfigurationError):
    """A name that is not in the study's data (an outcome, a predictor, a role)."""

    title = "Not in the data"


@dataclass
class Study:
    """The frames of the selected conversations (see the module docstring)."""

    conversations: pd.DataFrame
    messages: pd.DataFrame
    annotations: pd.DataFrame = field(default_factory=pd.DataFrame)  # the wide table
    levels: dict[str, list[str]] = field(default_factory=dict)  # factor column -> level order

    def __post_init__(self) -> None:
        self._conversation: pd.DataFrame | None = None
        self._message: pd.DataFrame | None = None

    # ------------------------------------------------------------------ the tables

    def conversation_table(self) -> pd.DataFrame:
        if self._conversation is None:
            table = m.conversation_metrics(self.messages, self.conversations)
            about = self._annotations(conversation=True)
            if not about.empty:
                table = table.merge(about, on="conversation_id", how="left")
            self._conversation = table
        return self._conversation

    def message_table(self) -> pd.DataFrame:
        if self._message is None:
            table = m.agent_messages(self.messages).reset_index(drop=True)
            table["role_turn"] = (
                table.groupby(["conversation_id", "role"], sort=False).cumcount() + 1
            ).astype("Int64")
            about = self._annotations(conversation=False)
            if not about.empty:
                table = table.merge(about, on=["conversation_id", "seq"], how="left")
            self._message = table
        return self._message

    def _annotations(self, *, conversation: bool) -> pd.DataFrame:
        wide = self.annotations
        if wide.empty:
            return pd.DataFrame()
        if conversation:
            rows = wide[wide["seq"].isna() & wide["agent"].isna()]
            keys = ["conversation_id"]
        else:
            rows = wide[wide["seq"].notna()]
            keys = ["conversation_id", "seq"]
        rows = rows.drop(columns=[c for c in ("seq", "agent") if c not in keys])
        values = [c for c in rows.columns if c not in keys and rows[c].notna().any()]
        return rows[[*keys, *values]].reset_index(drop=True)

    def annotation_columns(self, *, conversation: bool) -> list[str]:
        about = self._annotations(conversation=conversation)
        keys = {"conversation_id", "seq"}
        return [c for c in about.columns if c not in keys]

    # ------------------------------------------------------------------ names

    def roles(self) -> list[str]:
        return [str(r) for r in dict.fromkeys(self.message_table()["role"].dropna())]

    def role(self, name: str) -> str:
        """A role as the data spells it (case-insensitive)."""
        for r in self.roles():
            if r.casefold() == name.strip().casefold():
                return r
        raise StudyError(f"no role {name!r} among the agents (roles: {', '.join(self.roles())})")


async def load_study(
    store: Any, flt: ConversationFilter | None = None, *, annotations: bool = True
) -> Study:
    """The study's frames (and its annotations, wide) for the conversations ``flt`` selects."""
    from simulator.annotations.tables import annotations_frame, load_annotations, wide_frame

    flt = flt or ConversationFilter()
    conversations, messages = await load_all(store, flt)
    wide = pd.DataFrame()
    if annotations:
        found = await load_annotations(store, flt)
        if found:
            wide = wide_frame(annotations_frame(found))
    levels: dict[str, list[str]] = {}
    for exp_id in dict.fromkeys(conversations["experiment_id"].dropna()):
        exp = await store.experiments.get(str(exp_id))
        for f in exp.factors if exp is not None else []:
            levels.setdefault(factor_column(f.name), list(f.levels))
    return Study(conversations, messages, wide, levels)


# --------------------------------------------------------------------------- outcomes

_TEST = re.compile(r"^(?P<name>.+?)\s*(?P<op>=|>)\s*(?P<value>[^=>]+)$")


@dataclass(frozen=True)
class Measure:
    """A resolved outcome or score: the ``column`` of ``frame`` (a copy of the table it lives
    in) that holds it, at the ``unit`` of that table (conversation or message)."""

    name: str
    column: str
    unit: str
    frame: pd.DataFrame
    binary: bool

    @property
    def values(self) -> pd.Series:
        return self.frame[self.column]


def _as_test(values: pd.Series, op: str, value: str, name: str) -> pd.Series:
    if op == ">":
        try:
            threshold = float(value)
        except ValueError:
            raise StudyError(f"{name}>{value}: {value!r} is not a number") from None
        numbers = pd.to_numeric(values, errors="coerce")
        if values.notna().any() and numbers[values.notna()].isna().all():
            raise StudyError(f"{name}>{value}: {name} holds no numbers (use {name}=LEVEL)")
        return (numbers > threshold).astype(BOOL).mask(numbers.isna())
    wanted = value.strip().casefold()
    try:
        number = float(wanted)
    except ValueError:
        number = None
    if pd.api.types.is_numeric_dtype(values) and number is not None:
        out = values.astype(float) == number
    else:
        out = values.astype("string").str.strip().str.casefold() == wanted
    return out.astype(BOOL).mask(values.isna())


def _available(study: Study, unit: str) -> list[str]:
    if unit == "conversation":
        table = study.conversation_table()
        skip = {
            "conversation_id",
            "status",
            "error",
            "experiment_id",
            "experiment_name",
            "batch_id",
            "cell",
            "cell_key",
            "cell_counts",
            "cell_provider",
            "cell_model",
            "cell_models",
            "speaker_selection",
        }
        return [c for c in table.columns if c not in skip and not c.startswith("factor_")]
    return [*m.TURN_METRICS, *study.annotation_columns(conversation=False)]


def measure(
    study: Study,
    spec: str,
    *,
    per: str | None = None,
    role: str | None = None,
    unit: str | None = None,
) -> Measure:
    """Resolve an outcome or score ``spec`` (see the module docstring). A message-level one is
    averaged per conversation with ``per="conversation"`` (over ``role``'s messages only when
    given: the per-conversation toxicity of the guard). A name both tables have (``words``) is
    the conversation's unless ``unit="message"``."""
    spec = spec.strip()
    match = _TEST.match(spec)
    name, op, value = (
        (match["name"].strip(), match["op"], match["value"]) if match else (spec, None, None)
    )
    conversation = study.conversation_table()
    if per not in (None, "conversation"):
        raise StudyError(f"--per {per}: only 'conversation' (the mean of a message score)")
    in_messages = name in study.message_table().columns
    if (
        name in conversation.columns
        and name != "conversation_id"
        and not (unit == "message" and in_messages)
    ):
        if role is not None:
            raise StudyError(f"--role: {name} is about whole conversations, not a role's messages")
        frame = conversation.copy()
        unit = "conversation"
    else:
        messages = study.message_table()
        if name not in messages.columns or name in ("conversation_id", "seq"):
            conv_names = _available(study, "conversation")
            msg_names = _available(study, "message")
            raise StudyError(
                f"no outcome or score {name!r} in the selected conversations. About whole "
                f"conversations: {', '.join(conv_names[:40])}; about messages: "
                f"{', '.join(msg_names[:40]) or 'none'}"
            )
        frame = messages.copy()
        unit = "message"
        if role is not None:
            frame = frame[frame["role"] == study.role(role)].reset_index(drop=True)
    column = name
    binary = str(frame[name].dtype) in (BOOL, "bool")
    if op is not None:
        column = spec
        frame[column] = _as_test(frame[name], op, str(value), name)
        binary = True
    if unit == "message" and per == "conversation":
        grouped = frame.groupby("conversation_id", sort=False)[column]
        means = grouped.agg(lambda s: s.astype(float).mean()).rename(column)
        label = f"{column} (mean per conversation" + (f", {study.role(role)}" if role else "") + ")"
        table = conversation.copy()
        table[label] = table["conversation_id"].map(means).astype("Float64")
        return Measure(spec, label, "conversation", table, False)
    if binary:
        frame[column] = frame[column].astype(BOOL)
    elif not pd.api.types.is_numeric_dtype(frame[column]):
        levels = sorted(str(v) for v in frame[column].dropna().unique())[:8]
        raise StudyError(
            f"{name} holds answers, not numbers ({', '.join(levels)}): model one of them, "
            f"e.g. {name}={levels[0] if levels else 'LEVEL'}"
        )
    return Measure(spec, column, unit, frame, binary)


# --------------------------------------------------------------------------- predictors


@dataclass(frozen=True)
class Predictor:
    """A column used as a predictor, its display name, and whether it is categorical."""

    name: str
    column: str
    categorical: bool
    levels: tuple[str, ...] = ()  # categorical: the order (the first is the reference)


def predictors(
    study: Study,
    frame: pd.DataFrame,
    names: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    reference: Mapping[str, str] | None = None,
) -> list[Predictor]:
    """Resolve predictor names: a study factor (``goal``), ``model`` (the cell's models with
    their parameters), ``counts`` (every agent count that varies), a role (its agent count),
    ``days``, or any column of ``frame`` (``role``, ``agent_turn``, ``repeat``...). Strings are
    categorical (reference: the experiment's first level, else the first seen); numbers are
    numeric unless named in ``categorical``."""
    reference = {k.strip().casefold(): v for k, v in (reference or {}).items()}
    wanted_categorical = {c.strip().casefold() for c in categorical}
    roles = {
        column_key(c.removeprefix("count_")): c for c in frame.columns if c.startswith("count_")
    }
    out: list[Predictor] = []
    for raw in names:
        name = raw.strip()
        key = name.casefold()
        columns: list[tuple[str, str]] = []
        if name in frame.columns:
            columns = [(name, name)]
        elif factor_column(name) in frame.columns:
            columns = [(name, factor_column(name))]
        elif key == "model":
            columns = [("model", "cell_models")]
        elif key == "counts":
            columns = [(c, c) for c in roles.values()]
        elif column_key(name) in roles:
            columns = [(name, count_column(name))]
        else:
            factors = [c.removeprefix("factor_") for c in frame.columns if c.startswith("factor_")]
            raise StudyError(
                f"no predictor {name!r}: use a study factor ({', '.join(factors) or 'none'}), "
                f"model, counts, a role's agent count ({', '.join(roles) or 'none'}), days, or a "
                "column of the table"
            )
        for display, column in columns:
            series = frame[column]
            is_cat = (
                key in wanted_categorical
                or display.casefold() in wanted_categorical
                or not pd.api.types.is_numeric_dtype(series)
                or str(series.dtype) in (BOOL, "bool")
            )
            levels: tuple[str, ...] = ()
            if is_cat:
                seen = [str(v) for v in dict.fromkeys(series.dropna())]
                order = [lv for lv in study.levels.get(column, []) if lv in seen]
                order += [lv for lv in seen if lv not in order]
                ref = reference.get(display.casefold()) or reference.get(key)
                if ref is not None:
                    match = [lv for lv in order if lv.casefold() == ref.strip().casefold()]
                    if not match:
                        raise StudyError(
                            f"--reference {display}={ref}: not a level of {display} "
                            f"({', '.join(order)})"
                        )
                    order = [match[0], *[lv for lv in order if lv != match[0]]]
                levels = tuple(order)
            out.append(Predictor(display, column, is_cat, levels))
    return out


__all__ = [
    "Measure",
    "Predictor",
    "Study",
    "StudyError",
    "load_study",
    "measure",
    "predictors",
]
