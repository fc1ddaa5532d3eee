"""Per-conversation metrics and per-batch aggregates, computed from the frames of ``loading``.

Agent messages are those of kind ``utterance`` or ``action`` (the kickoff, summaries and system
events are not an agent's turn). Words are whitespace-separated tokens of the stored (cleaned)
content; message length is in words (``mean_words``) and in characters (``mean_chars``).
Token totals count every stored message, the summarizer's included; ``agent_*_tokens`` only
agent messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from simulator.analysis.catalog import TURN_METRICS
from simulator.analysis.loading import (
    AGENT_KINDS,
    FLOAT,
    INT,
    column_key,
    count_column,
    factor_columns,
    role_columns,
    word_count,
)
from simulator.domain import Message

_SUMS = ("messages", "words", "chars", "prompt_tokens", "completion_tokens", "total_tokens")


def agent_messages(messages: pd.DataFrame) -> pd.DataFrame:
    """The agent messages of a message frame, each with ``agent_turn``: its 1-based position among
    its conversation's agent messages (across days)."""
    out = messages[messages["kind"].isin(AGENT_KINDS)].copy()
    out["agent_turn"] = (out.groupby("conversation_id", sort=False).cumcount() + 1).astype(INT)
    return out


def _grouped(messages: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    agent = agent_messages(messages)
    if agent.empty:
        cols = [*keys, *_SUMS, "fallbacks", "mean_words", "mean_chars", "turn_share", "word_share"]
        return pd.DataFrame({c: pd.Series(dtype="string" if c in keys else FLOAT) for c in cols})
    agent = agent.assign(messages=1, fallbacks=agent["fallback"].astype(INT))
    sums = ["messages", "words", "chars", "prompt_tokens", "completion_tokens", "total_tokens"]
    g = agent.groupby(keys, sort=False, dropna=False)[[*sums, "fallbacks"]].sum().reset_index()
    totals = agent.groupby("conversation_id", sort=False)[["messages", "words"]].sum()
    conv_messages = g["conversation_id"].map(totals["messages"])
    conv_words = g["conversation_id"].map(totals["words"])
    g["mean_words"] = (g["words"] / g["messages"]).astype(FLOAT)
    g["mean_chars"] = (g["chars"] / g["messages"]).astype(FLOAT)
    g["turn_share"] = (g["messages"] / conv_messages).astype(FLOAT)
    g["word_share"] = (g["words"] / conv_words.where(conv_words > 0)).astype(FLOAT)
    for c in [*sums, "fallbacks"]:
        g[c] = g[c].astype(INT)
    return g


def role_metrics(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per (conversation, role): messages, words, chars, tokens, fallbacks, mean message
    length, and the role's share of the conversation's agent turns and words."""
    out = _grouped(messages, ["conversation_id", "role"])
    if not out.empty:
        speakers = agent_messages(messages).groupby(["conversation_id", "role"], sort=False)
        agents = speakers["speaker"].nunique().rename("agents").reset_index()
        out = out.merge(agents, on=["conversation_id", "role"], how="left")
        out["agents"] = out["agents"].astype(INT)
    return out


def agent_metrics(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per (conversation, agent) with the same measures as ``role_metrics``."""
    return _grouped(messages, ["conversation_id", "speaker", "role"])


def conversation_metrics(messages: pd.DataFrame, conversations: pd.DataFrame) -> pd.DataFrame:
    """One row per conversation of ``conversations`` (same order): agent messages, summaries,
    words, mean message length, token totals, fallbacks, re-asks, retries, failure, duration, and
    per role ``messages_<role>``, ``words_<role>``, ``mean_words_<role>``, ``turn_share_<role>``,
    ``tokens_<role>``; followed by the grid cell and factor columns."""
    ids = conversations["conversation_id"]
    msgs = messages[messages["conversation_id"].isin(set(ids))]
    agent = agent_messages(msgs)
    by_conv = msgs.groupby("conversation_id", sort=False)
    by_agent = agent.groupby("conversation_id", sort=False)

    def per(series: pd.Series, fill: float | None = 0) -> pd.Series:
        """A per-conversation series aligned with ``ids`` (missing: ``fill``)."""
        s = pd.Series(series.reindex(ids.to_numpy()).to_numpy(), index=ids.index)
        if s.dtype == object:
            s = s.astype("Float64")
        return s if fill is None else s.fillna(fill)

    out = pd.DataFrame({"conversation_id": ids.astype("string")})
    out["status"] = conversations["status"].astype("string").to_numpy()
    out["failed"] = (conversations["status"] == "failed").astype("boolean").to_numpy()
    out["error"] = conversations["error"].astype("string").to_numpy()
    out["messages"] = per(by_agent.size()).astype(INT)
    out["summaries"] = per(msgs[msgs["kind"] == "summary"].groupby("conversation_id").size())
    out["summaries"] = out["summaries"].astype(INT)
    out["stored"] = per(by_conv.size()).astype(INT)
    out["words"] = per(by_agent["words"].sum()).astype(INT)
    out["mean_words"] = (out["words"] / out["messages"].where(out["messages"] > 0)).astype(FLOAT)
    chars = per(by_agent["chars"].sum())
    out["mean_chars"] = (chars / out["messages"].where(out["messages"] > 0)).astype(FLOAT)
    for col in ("prompt_tokens", "completion_tokens", "total_tokens"):
        out[col] = per(by_conv[col].sum()).astype(INT)
    out["agent_total_tokens"] = per(by_agent["total_tokens"].sum()).astype(INT)
    out["fallbacks"] = per(by_conv["fallback"].sum()).astype(INT)
    reasked = msgs["flags"].fillna("").str.split(", ").map(lambda f: "reasked" in f)
    out["reasked"] = per(reasked.groupby(msgs["conversation_id"]).sum()).astype(INT)
    out["retries"] = per(
        (msgs["attempts"] - 1).clip(lower=0).groupby(msgs["conversation_id"]).sum()
    )
    out["retries"] = out["retries"].astype(INT)
    out["latency_ms_total"] = per(by_conv["latency_ms"].sum()).astype(FLOAT)
    out["latency_ms_mean"] = per(by_agent["latency_ms"].mean(), fill=None).astype(FLOAT)
    span = (by_conv["created_at"].max() - by_conv["created_at"].min()).dt.total_seconds()
    duration = pd.Series(conversations["duration_s"].to_numpy(), index=out.index, dtype=FLOAT)
    out["duration_s"] = duration.fillna(per(span, fill=None).astype(FLOAT))

    roles = role_metrics(msgs)
    for role in dict.fromkeys(roles["role"].dropna()):
        key = column_key(role)
        r = roles[roles["role"] == role].set_index("conversation_id")
        present = _role_present(conversations, role)
        for src, name, dtype in (
            ("messages", f"messages_{key}", INT),
            ("words", f"words_{key}", INT),
            ("mean_words", f"mean_words_{key}", FLOAT),
            ("turn_share", f"turn_share_{key}", FLOAT),
            ("total_tokens", f"tokens_{key}", INT),
        ):
            values = ids.map(r[src])
            if src != "mean_words":  # a role that never spoke said 0 words (mean: undefined)
                values = values.where(values.notna() | ~present, 0)
            out[name] = values.astype(dtype).to_numpy()

    cell_cols = [
        "experiment_id",
        "batch_id",
        "cell_index",
        *role_columns(conversations),
        "cell_counts",
        "days",
        "total_messages",
        "speaker_selection",
        "repeat",
        "seed",
        "cell_model",
        "cell_models",
        *factor_columns(conversations),
    ]
    for c in cell_cols:
        out[c] = conversations[c].to_numpy()
        out[c] = out[c].astype(conversations[c].dtype)
    return out.reset_index(drop=True)


def _role_present(conversations: pd.DataFrame, role: str) -> pd.Series:
    col = count_column(role)
    if col not in conversations:
        return pd.Series(True, index=conversations.index).reset_index(drop=True)
    counts = conversations[col].reset_index(drop=True)
    return counts.fillna(0) > 0


#: The columns that identify a grid cell in ``cell_metrics`` (plus ``count_*`` and ``factor_*``).
CELL_KEYS = (
    "batch_id",
    "cell_counts",
    "days",
    "total_messages",
    "speaker_selection",
    "cell_models",
)


def cell_metrics(metrics: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Aggregates of ``conversation_metrics`` per grid cell (repeats pooled): conversations, done,
    failed, and the mean (and for tokens also the sum) of the per-conversation measures.
    ``by`` overrides the grouping columns."""
    keys = (
        list(by)
        if by is not None
        else [
            *CELL_KEYS,
            *role_columns(metrics),
            *factor_columns(metrics),
        ]
    )
    if metrics.empty:
        return pd.DataFrame({k: pd.Series(dtype=metrics[k].dtype) for k in keys})
    share_cols = [c for c in metrics.columns if c.startswith(("turn_share_", "mean_words_"))]
    g = metrics.groupby(keys, sort=False, dropna=False)
    out = g.size().rename("conversations").reset_index()
    out["conversations"] = out["conversations"].astype(INT)
    done = (
        (metrics["status"] == "done")
        .astype(int)
        .groupby([metrics[k] for k in keys], sort=False, dropna=False)
        .sum()
    )
    out["done"] = done.to_numpy().astype("int64")
    out["done"] = out["done"].astype(INT)
    out["failed"] = g["failed"].sum().to_numpy().astype("int64")
    out["failed"] = out["failed"].astype(INT)
    means = [
        "messages",
        "summaries",
        "words",
        "mean_words",
        "total_tokens",
        "fallbacks",
        "retries",
        "duration_s",
        *share_cols,
    ]
    for c in means:
        out[f"{c}_mean"] = g[c].mean().to_numpy().astype("float64")
        out[f"{c}_mean"] = out[f"{c}_mean"].astype(FLOAT)
    for c in ("total_tokens", "fallbacks"):
        out[f"{c}_sum"] = g[c].sum().to_numpy().astype("int64")
        out[f"{c}_sum"] = out[f"{c}_sum"].astype(INT)
    return out


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
