"""Reading the results: tidy pandas frames, per-conversation metrics, exports and figures.

>>> from simulator.analysis import load_messages, load_conversations
>>> messages = await load_messages(store, batch_id=batch_id, factors={"goal": "Escape"})

The filter is the app's one ``ConversationFilter`` (``simulator.domain.filters``).

Submodules: ``loading`` (frames), ``metrics``, ``exports`` (CSV, JSONL, Parquet,
Markdown, text, HTML), ``plots`` (matplotlib PNGs). Importing this package imports pandas but
neither matplotlib nor textual.
"""

from simulator.analysis.loading import (
    conversations_frame,
    load_all,
    load_conversations,
    load_messages,
    messages_frame,
)
from simulator.domain.filters import ConversationFilter

__all__ = [
    "ConversationFilter",
    "conversations_frame",
    "load_all",
    "load_conversations",
    "load_messages",
    "messages_frame",
]
