"""Small real HTTP servers for tests: a fake Ollama and a fake OpenAI-compatible server, both
recording request bodies and overlap, with scriptable faults (see base.py)."""

from tests.servers.base import FakeServer, Fault, Reply, Seen, Stream
from tests.servers.ollama_server import FakeOllamaServer
from tests.servers.openai_server import FakeOpenAIServer

__all__ = [
    "FakeOllamaServer",
    "FakeOpenAIServer",
    "FakeServer",
    "Fault",
    "Reply",
    "Seen",
    "Stream",
]
