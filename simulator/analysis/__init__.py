"""Reading the results: tidy pandas frames, per-conversation metrics, exports and figures.

>>> from simulator.analysis import load_messages, load_conversations
>>> messages = await load_messages(store, batch=batch_id, factors={"goal": "Escape"})

Submodules: ``loading`` (frames and filters), ``metrics``, ``exports`` (CSV, JSONL, Parquet,
Markdown, text, HTML), ``plots`` (matplotlib PNGs). Importing this package imports pandas but
neither matplotlib nor textual.
"""

from simulator.analysis.loading import (
    AnalysisFilter,
    conversations_frame,
    load_all,
    load_conversations,
    load_messages,
    messages_frame,
)

__all__ = [
    "AnalysisFilter",
    "conversations_frame",
    "load_all",
    "load_conversations",
    "load_messages",
    "messages_frame",
]
