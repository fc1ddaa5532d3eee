"""Small real HTTP servers for tests: a fake Ollama and a fake OpenAI-compatible server (also
one speaking the moderation API), recording request bodies and overlap, with scriptable faults
(see base.py)."""

from tests.servers.base import FakeServer, Fault, Reply, Seen, Stream
from tests.servers.moderation_server import FakeModerationServer
from tests.servers.ollama_server import FakeOllamaServer
from tests.servers.openai_server import FakeOpenAIServer

__all__ = [
    "FakeModerationServer",
    "FakeOllamaServer",
    "FakeOpenAIServer",
    "FakeServer",
    "Fault",
    "Reply",
    "Seen",
    "Stream",
]
