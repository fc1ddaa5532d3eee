"""Per-conversation metrics and per-cell aggregates, computed from the frames of ``loading``.

Agent messages are those of kind ``utterance`` or ``action`` (the kickoff, summaries and system
events are not an agent's turn). Words are whitespace-separated tokens of the stored (cleaned)
content; message length is in words (``mean_words``) and in characters (``mean_chars``).
Token totals count every stored message, the summarizer's included; ``agent_*_tokens`` only
agent messages.

Each table declares its columns once (``ROLE_COLUMNS``, ``AGENT_COLUMNS``, ``METRIC_COLUMNS`` with
``PER_ROLE``, ``CELL_TABLE_COLUMNS``) and goes through ``loading.typed``: the dtypes never depend
on the selection. Per-role columns of a conversation that has no such role (no agent of it in its
cell, and no message by it) are missing, never 0.

Grid cells are grouped by ``cell_key`` (``simulator.domain.cells``): everything of a cell but
its repeat and seed, the whole model set with its parameters included. Every aggregate gives n,
mean, SD and a 95 % interval (t-based for means, Wilson for proportions: ``uncertainty``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from simulator.analysis.catalog import TURN_METRICS
from simulator.analysis.loading import (
    AGENT_KINDS,
    BOOL,
    CELL_COLUMNS,
    FLOAT,
    INT,
    STRING,
    column_key,
    factor_columns,
    role_columns,
    typed,
    word_count,
)
from simulator.analysis.uncertainty import (
    mean_interval,
    proportion_interval,
    stat_columns,
    wide_values,
)
from simulator.domain import Message

#: Measures of a (conversation, role) or (conversation, agent) row.
MEASURES: dict[str, str] = {
    "messages": INT,
    "words": INT,
    "chars": INT,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "total_tokens": INT,
    "fallbacks": INT,
    "mean_words": FLOAT,
    "mean_chars": FLOAT,
    "turn_share": FLOAT,
    "word_share": FLOAT,
}
#: Labels copied from the message frame onto the per-role and per-agent rows.
LABELS: dict[str, str] = {
    "experiment_id": STRING,
    "batch_id": STRING,
    "conversation_number": INT,
    "cell": STRING,
    "cell_key": STRING,
    "repeat": INT,
}
ROLE_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "role": STRING,
    "agents": INT,
    **MEASURES,
    **LABELS,
}
AGENT_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "speaker": STRING,
    "role": STRING,
    **MEASURES,
    **LABELS,
}

#: The fixed columns of ``conversation_metrics``; the ``PER_ROLE`` columns follow, then the
#: conversation's labels (``METRIC_LABELS``), the cell columns, ``count_*`` and ``factor_*``.
METRIC_COLUMNS: dict[str, str] = {
    "conversation_id": STRING,
    "status": STRING,
    "failed": BOOL,
    "error": STRING,
    "messages": INT,
    "summaries": INT,
    "stored": INT,
    "words": INT,
    "mean_words": FLOAT,
    "mean_chars": FLOAT,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "total_tokens": INT,
    "agent_total_tokens": INT,
    "fallbacks": INT,
    "reasked": INT,
    "retries": INT,
    "latency_ms_total": FLOAT,
    "latency_ms_mean": FLOAT,
    "duration_s": FLOAT,
}
#: Per-role columns of ``conversation_metrics``: (prefix, dtype, the role measure it shows).
PER_ROLE: tuple[tuple[str, str, str], ...] = (
    ("messages_", INT, "messages"),
    ("words_", INT, "words"),
    ("mean_words_", FLOAT, "mean_words"),
    ("turn_share_", FLOAT, "turn_share"),
    ("tokens_", INT, "total_tokens"),
)
METRIC_LABELS: dict[str, str] = {
    "experiment_id": STRING,
    "experiment_name": STRING,
    "batch_id": STRING,
    "conversation_number": INT,
}

#: What identifies a row of ``cell_metrics`` by default: a cell of a batch (or of the
#: conversations run alone of an experiment).
CELL_KEYS = ("experiment_id", "batch_id", "cell_key")
#: The cell's description, the same for every conversation of a cell (taken from the first).
CELL_DESCRIPTION = (
    "experiment_name",
    "cell",
    "cell_counts",
    "days",
    "total_messages",
    "speaker_selection",
    "rounds",
    "cell_models",
)
#: Measures described per cell (``<measure>_n``, ``_mean``, ``_sd``, ``_ci_low``, ``_ci_high``:
#: n, mean, SD and the t-based 95 % interval), besides each role's turn share and mean message
#: length; ``total_tokens`` and ``fallbacks`` are also summed (``<measure>_sum``).
CELL_MEANS = (
    "messages",
    "summaries",
    "words",
    "mean_words",
    "total_tokens",
    "fallbacks",
    "retries",
    "duration_s",
)
CELL_SUMS = ("total_tokens", "fallbacks")
CELL_COUNTS: dict[str, str] = {"conversations": INT, "done": INT, "failed": INT}
#: The share of failed conversations of a cell with its Wilson 95 % interval.
CELL_RATES: dict[str, str] = {
    "failed_rate": FLOAT,
    "failed_rate_ci_low": FLOAT,
    "failed_rate_ci_high": FLOAT,
}


def agent_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """The agent messages of a message frame, each with ``agent_turn``: its 1-based position among
    its conversation's agent messages (across days)."""
    out = messages[messages["kind"].isin(AGENT_KINDS)].copy()
    out["agent_turn"] = (out.groupby("conversation_id", sort=False).cumcount() + 1).astype(INT)
    return out


def _grouped(messages: pd.DataFrame, keys: list[str], columns: dict[str, str]) -> pd.DataFrame:
    agent = agent_messages(messages)
    if agent.empty:
        return typed(pd.DataFrame(), columns)
    agent = agent.assign(messages=1, fallbacks=agent["fallback"].fillna(False).astype(int))
    sums = ["messages", "words", "chars", "prompt_tokens", "completion_tokens", "total_tokens"]
    g = agent.groupby(keys, sort=False, dropna=False)
    out = g[[*sums, "fallbacks"]].sum().reset_index()
    labels = [c for c in LABELS if c in agent.columns]
    if labels:
        out[labels] = g[labels].first().reset_index(drop=True)
    totals = agent.groupby("conversation_id", sort=False)[["messages", "words"]].sum()
    conv_messages = out["conversation_id"].map(totals["messages"]).astype(float)
    conv_words = out["conversation_id"].map(totals["words"]).astype(float)
    n = out["messages"].astype(float)
    out["mean_words"] = out["words"].astype(float) / n
    out["mean_chars"] = out["chars"].astype(float) / n
    out["turn_share"] = n / conv_messages
    out["word_share"] = out["words"].astype(float) / conv_words.where(conv_words > 0)
    return out


def role_metrics(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per (conversation, role) that wrote agent messages: messages, words, chars,
    tokens, fallbacks, mean message length, the role's share of the conversation's agent turns
    and words, and how many of its agents spoke; with the conversation's cell labels."""
    out = _grouped(messages, ["conversation_id", "role"], ROLE_COLUMNS)
    if not out.empty:
        speakers = agent_messages(messages).groupby(["conversation_id", "role"], sort=False)
        agents = speakers["speaker"].nunique().rename("agents").reset_index()
        out = out.merge(agents, on=["conversation_id", "role"], how="left")
    return typed(out, ROLE_COLUMNS)


def agent_metrics(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per (conversation, agent) with the same measures as ``role_metrics``."""
    return typed(
        _grouped(messages, ["conversation_id", "speaker", "role"], AGENT_COLUMNS), AGENT_COLUMNS
    )


def _role_keys(conversations: pd.DataFrame, roles: pd.DataFrame) -> list[str]:
    """Column keys of every role: those with agents in the cells, then any other that spoke."""
    keys = [c.removeprefix("count_") for c in role_columns(conversations)]
    keys += [column_key(str(r)) for r in roles["role"].dropna()]
    return list(dict.fromkeys(keys))


def metric_columns(role_keys: Sequence[str], conversations: pd.DataFrame) -> dict[str, str]:
    """The declared columns of ``conversation_metrics`` for these roles and conversations."""
    cols = dict(METRIC_COLUMNS)
    for key in role_keys:
        cols.update({f"{prefix}{key}": dtype for prefix, dtype, _ in PER_ROLE})
    cols.update(METRIC_LABELS)
    cols.update(CELL_COLUMNS)
    cols.update({c: INT for c in role_columns(conversations)})
    cols.update({c: STRING for c in factor_columns(conversations)})
    return cols


def conversation_metrics(messages: pd.DataFrame, conversations: pd.DataFrame) -> pd.DataFrame:
    """One row per conversation of ``conversations`` (same order): agent messages, summaries,
    words, mean message length, token totals, fallbacks, re-asks, retries, failure, duration, and
    per role ``messages_<role>``, ``words_<role>``, ``mean_words_<role>``, ``turn_share_<role>``,
    ``tokens_<role>`` (missing for a conversation without the role); followed by the
    conversation's labels and its grid cell and factor columns."""
    conversations = conversations.reset_index(drop=True)
    ids = pd.Index(conversations["conversation_id"].astype(str))
    msgs = messages[messages["conversation_id"].astype(str).isin(set(ids))]
    agent = agent_messages(msgs)
    by_conv = msgs.groupby("conversation_id", sort=False)
    by_agent = agent.groupby("conversation_id", sort=False)

    def per(series: pd.Series, fill: float | None = 0) -> pd.Series:
        """A per-conversation series aligned with the conversations (missing: ``fill``)."""
        s = pd.Series(series.astype(float).reindex(ids).to_numpy(), dtype=float)
        return s if fill is None else s.fillna(fill)

    out = pd.DataFrame({"conversation_id": ids.to_numpy()})
    out["status"] = conversations["status"].to_numpy()
    out["failed"] = (conversations["status"] == "failed").fillna(False).to_numpy()
    out["error"] = conversations["error"].to_numpy()
    out["messages"] = per(by_agent.size())
    out["summaries"] = per(msgs[msgs["kind"] == "summary"].groupby("conversation_id").size())
    out["stored"] = per(by_conv.size())
    out["words"] = per(by_agent["words"].sum())
    spoke = out["messages"].where(out["messages"] > 0)
    out["mean_words"] = out["words"] / spoke
    out["mean_chars"] = per(by_agent["chars"].sum()) / spoke
    for col in ("prompt_tokens", "completion_tokens", "total_tokens"):
        out[col] = per(by_conv[col].sum())
    out["agent_total_tokens"] = per(by_agent["total_tokens"].sum())
    out["fallbacks"] = per(by_conv["fallback"].sum())
    flags = msgs["message_flags"].fillna("").astype(str).str.split(", ")
    reasked = flags.map(lambda f: "reasked" in f).astype(int)
    out["reasked"] = per(reasked.groupby(msgs["conversation_id"]).sum())
    extra = (msgs["attempts"].astype(float) - 1).clip(lower=0)
    out["retries"] = per(extra.groupby(msgs["conversation_id"]).sum())
    out["latency_ms_total"] = per(by_conv["latency_ms"].sum())
    out["latency_ms_mean"] = per(by_agent["latency_ms"].mean(), fill=None)
    span = (by_conv["created_at"].max() - by_conv["created_at"].min()).dt.total_seconds()
    duration = pd.Series(conversations["duration_s"].to_numpy(dtype=float, na_value=float("nan")))
    out["duration_s"] = duration.fillna(per(span, fill=None))

    roles = role_metrics(msgs)
    keys = _role_keys(conversations, roles)
    spoken_keys = roles["role"].astype(str).map(column_key)
    has_turns = out["messages"] > 0
    for key in keys:
        r = roles[spoken_keys == key]
        sums = r.groupby("conversation_id", sort=False)[["messages", "words", "total_tokens"]]
        by_role = sums.sum()
        spoke_role = pd.Series(ids.isin(set(r["conversation_id"].astype(str))))
        count = f"count_{key}"
        if count in conversations:
            counted = conversations[count].fillna(0).astype(int).to_numpy() > 0
            present = pd.Series(counted) | spoke_role
        else:
            present = spoke_role
        msgs_role = per(by_role["messages"])
        words_role = per(by_role["words"])
        values = {
            "messages": msgs_role,
            "words": words_role,
            "total_tokens": per(by_role["total_tokens"]),
            "mean_words": words_role / msgs_role.where(msgs_role > 0),
            "turn_share": (msgs_role / out["messages"]).where(has_turns),
        }
        for prefix, _, measure in PER_ROLE:
            out[f"{prefix}{key}"] = values[measure].where(present)

    for c in [*METRIC_LABELS, *CELL_COLUMNS]:
        out[c] = conversations[c].to_numpy() if c in conversations else pd.NA
    for c in [*role_columns(conversations), *factor_columns(conversations)]:
        out[c] = conversations[c].to_numpy()
    return typed(out, metric_columns(keys, conversations))


def cell_columns(metrics: pd.DataFrame, keys: Sequence[str]) -> dict[str, str]:
    """The declared columns of ``cell_metrics`` grouped by ``keys``."""
    source = {**METRIC_COLUMNS, **METRIC_LABELS, **CELL_COLUMNS}
    cols = {k: source.get(k, str(metrics[k].dtype) if k in metrics else STRING) for k in keys}
    if list(keys) == list(CELL_KEYS):
        cols.update({c: source[c] for c in CELL_DESCRIPTION})
        cols.update({c: INT for c in role_columns(metrics)})
        cols.update({c: STRING for c in factor_columns(metrics)})
    cols.update(CELL_COUNTS)
    cols.update(CELL_RATES)
    for c in [*CELL_MEANS, *_share_columns(metrics)]:
        cols.update(stat_columns(c))
    cols.update({f"{c}_sum": INT for c in CELL_SUMS})
    return cols


def _share_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if c.startswith(("turn_share_", "mean_words_"))]


def cell_metrics(metrics: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Aggregates of ``conversation_metrics`` per grid cell (``CELL_KEYS``: repeats pooled, and
    only repeats: a cell's key includes its whole model set with its parameters), in order of
    first appearance: conversations, done, failed, the share failed with its Wilson interval, the
    cell's description, and for each per-conversation measure its n (conversations where it is
    not missing), mean, SD and t-based 95 % interval (for tokens and fallbacks also the sum).
    ``by`` groups by other columns instead."""
    keys = list(by) if by is not None else list(CELL_KEYS)
    columns = cell_columns(metrics, keys)
    if metrics.empty:
        return typed(pd.DataFrame(), columns)
    g = metrics.groupby(keys, sort=False, dropna=False)
    out = g.size().rename("conversations").reset_index()
    described = [c for c in columns if c not in out.columns and c in metrics.columns]
    first = [c for c in described if c in CELL_DESCRIPTION or c.startswith(("count_", "factor_"))]
    if first:
        out[first] = g[first].first().reset_index(drop=True)
    out["done"] = g["status"].agg(lambda s: int((s == "done").sum())).to_numpy()
    out["failed"] = g["failed"].agg(lambda s: int(s.fillna(False).sum())).to_numpy()
    rates = [proportion_interval(s.fillna(False).tolist()) for _, s in g["failed"]]
    out["failed_rate"] = [r.mean for r in rates]
    out["failed_rate_ci_low"] = [r.ci_low for r in rates]
    out["failed_rate_ci_high"] = [r.ci_high for r in rates]
    for c in [*CELL_MEANS, *_share_columns(metrics)]:
        stats = pd.DataFrame([wide_values(c, mean_interval(s.tolist())) for _, s in g[c]])
        for col in stats.columns:
            out[col] = stats[col].to_numpy()
    for c in CELL_SUMS:
        out[f"{c}_sum"] = g[c].agg(lambda s: s.astype(float).sum()).to_numpy()
    return typed(out, columns)


SHARE_COLUMNS: dict[str, str] = {
    "batch_id": STRING,
    "cell_key": STRING,
    "cell": STRING,
    "role": STRING,
    "conversations": INT,
    "turn_share": FLOAT,
    "turn_share_n": INT,
    "turn_share_sd": FLOAT,
    "turn_share_ci_low": FLOAT,
    "turn_share_ci_high": FLOAT,
    "word_share": FLOAT,
    "word_share_n": INT,
    "word_share_sd": FLOAT,
    "word_share_ci_low": FLOAT,
    "word_share_ci_high": FLOAT,
}


def share_by_cell(messages: pd.DataFrame) -> pd.DataFrame:
    """Per grid cell of a batch (``cell_key``: repeats pooled, nothing else) and role, in grid
    order (batch by batch): the mean share of the conversations' agent turns and words (over the
    conversations where the role spoke) and how many those were, with each share's n, SD and
    t-based 95 % interval. What the ``share`` figure draws."""
    roles = role_metrics(messages)
    if roles.empty:
        return typed(pd.DataFrame(), SHARE_COLUMNS)
    keys = ["batch_id", "cell_key", "role"]
    roles = roles.sort_values(["batch_id", "conversation_number"], kind="stable")
    g = roles.groupby(keys, sort=False, dropna=False)
    out = g[["turn_share", "word_share"]].mean().reset_index()
    out["cell"] = g["cell"].first().to_numpy()
    out["conversations"] = g["conversation_id"].nunique().to_numpy()
    for c in ("turn_share", "word_share"):
        stats = pd.DataFrame([wide_values(c, mean_interval(s.tolist())) for _, s in g[c]])
        for col in stats.columns:
            if col != f"{c}_mean":
                out[col] = stats[col].to_numpy()
    return typed(out, SHARE_COLUMNS)


def per_turn(messages: pd.DataFrame, metric: str = "completion_tokens") -> pd.DataFrame:
    """``metric`` of every agent message by its agent turn: columns conversation_id, role,
    speaker, agent_turn, value."""
    if metric not in TURN_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(TURN_METRICS)}")
    agent = agent_messages(messages)
    out = agent[["conversation_id", "role", "speaker", "agent_turn"]].copy()
    out["value"] = agent[metric].astype(FLOAT)
    return out.reset_index(drop=True)


def turn_series(
    messages: pd.DataFrame, metric: str = "completion_tokens"
) -> dict[str, tuple[list[int], list[float]]]:
    """Per role: agent turns and the mean of ``metric`` at each turn (over conversations), ready
    to plot (matplotlib in ``plots``, plotext in the TUI chart)."""
    data = per_turn(messages, metric)
    out: dict[str, tuple[list[int], list[float]]] = {}
    for role in dict.fromkeys(data["role"].dropna()):
        d = data[data["role"] == role].groupby("agent_turn")["value"].mean().sort_index()
        out[str(role)] = ([int(x) for x in d.index], [float(v) for v in d.to_numpy()])
    return out


def turn_series_of_messages(
    messages: Iterable[Message], metric: str = "completion_tokens"
) -> dict[str, tuple[list[int], list[float]]]:
    """``turn_series`` of domain messages (one conversation as a service returns it), without
    the conversation's labels: what the TUI's chart needs."""
    rows = [
        {
            "conversation_id": msg.conversation_id,
            "seq": msg.seq,
            "role": msg.role,
            "speaker": msg.speaker,
            "kind": msg.kind.value,
            "words": word_count(msg.content),
            "chars": len(msg.content),
            "prompt_tokens": msg.usage.prompt_tokens,
            "completion_tokens": msg.usage.completion_tokens,
            "total_tokens": msg.usage.total_tokens,
            "latency_ms": msg.latency_ms,
        }
        for msg in sorted(messages, key=lambda x: (x.conversation_id, x.seq))
    ]
    columns = ["conversation_id", "seq", "role", "speaker", "kind", *TURN_METRICS]
    frame = pd.DataFrame(rows, columns=columns)
    return turn_series(frame, metric)
