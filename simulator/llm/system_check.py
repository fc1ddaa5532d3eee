"""Did the server read the system message? Judged once per model and run, from token counts.

Some chat templates drop the system message without an error: llama-cpp-python's ``gemma``
format does (Gemma has no system role, and that format leaves the message out instead of folding
it into the first user turn, as Gemma's own template does). The model then never sees its role
and nothing fails. The server's count of prompt tokens shows it: a request whose system message
alone holds 986 characters cannot be 21 tokens long.

The rule, built to never cry wolf:

- text takes about one token per 4 characters; a token covers more than
  ``MAX_CHARS_PER_TOKEN`` (10) characters only in odd text (long runs of one symbol), and a
  chat template adds tokens, never removes text. So a request of C characters read whole counts
  at least C / 10 tokens: fewer means part of it was not read;
- only a request whose system message has at least ``MIN_SYSTEM_CHARS`` characters is judged
  (a short one drowns in the template's own tokens either way);
- only a count of the whole prompt is judged (``ChatResult.prompt_tokens_total``): OpenAI's
  ``usage.prompt_tokens`` includes the cached part (a server that reports ``cached_tokens``
  beside it gets them added on top, which can hide a drop but never invent one), while Ollama's
  ``prompt_eval_count`` leaves out a prefix served from its cache in some versions without
  saying so: a short count there could always be a cache hit, so Ollama is not judged (nor
  its OpenAI-compatible endpoint, whose answers say ``system_fingerprint: fp_ollama``).

``Backends`` judges the first such call of each model (endpoint and model name) of a run; the
verdict holds for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.llm.base import ChatMessage

#: Warning recorded on a conversation whose model dropped the system message (then the model).
SYSTEM_PROMPT_DROPPED = "system_prompt_dropped"
#: A token covers at most this many characters on average (about 4 in ordinary text).
MAX_CHARS_PER_TOKEN = 10
#: System messages shorter than this are not judged.
MIN_SYSTEM_CHARS = 200


def system_chars(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.content) for m in messages if m.role == "system")


def judgeable(messages: Sequence[ChatMessage]) -> bool:
    """Whether a request carries enough system text to judge its token count."""
    return system_chars(messages) >= MIN_SYSTEM_CHARS


def dropped_system(messages: Sequence[ChatMessage], prompt_tokens_total: int | None) -> bool | None:
    """True when the count proves that the system message was not read, False when the
    request was counted whole, None when this request and count cannot tell."""
    if not prompt_tokens_total or prompt_tokens_total <= 0 or not judgeable(messages):
        return None
    sent_chars = sum(len(m.content) for m in messages)
    return prompt_tokens_total * MAX_CHARS_PER_TOKEN < sent_chars


def warning_for(model: str) -> str:
    """The warning stored on a conversation: ``system_prompt_dropped:<model>``."""
    return f"{SYSTEM_PROMPT_DROPPED}:{model}"


def describe(warning: str) -> str:
    """A warning as a sentence a researcher can act on (unknown warnings are shown as they are)."""
    kind, _, model = warning.partition(":")
    if kind == SYSTEM_PROMPT_DROPPED:
        return (
            f"the server of model {model!r} seems to drop the system message (its prompt token "
            "count is far below the size of what was sent): the agents may never see their "
            "role. Check the server's chat template (llama-cpp-python: do not use "
            "--chat_format gemma; use a format that folds the system prompt into the first "
            "user turn)."
        )
    return warning


__all__ = [
    "MAX_CHARS_PER_TOKEN",
    "MIN_SYSTEM_CHARS",
    "SYSTEM_PROMPT_DROPPED",
    "describe",
    "dropped_system",
    "judgeable",
    "system_chars",
    "warning_for",
]
