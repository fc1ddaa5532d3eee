"""A local server speaking OpenAI's chat and moderation APIs, for rehearsals without an account
(the walkthrough of docs/annotations.md)::

    python -m tests.servers.local --port 8765

Judges get answers valid for their rubric (drawn from what they are shown), moderation gets
deterministic scores (tests/servers/moderation_server.py). Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import time

from tests.servers.moderation_server import FakeModerationServer


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A local server speaking OpenAI's chat and moderation APIs (for rehearsals "
        "and tests)."
    )
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = FakeModerationServer(port=args.port).start()
    print(f"serving {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
