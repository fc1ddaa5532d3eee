"""Named, seeded random streams: randomness never comes from global state.

A stream is derived from a base seed and a path of names (and numbers), e.g.
``stream(seed, "speaker", day, turn)``. The same path always gives the same sequence, so a run that
is resumed at any point draws exactly what the uninterrupted run drew, with no generator state to
save. Different paths give independent streams.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *path: object) -> int:
    """A 63-bit seed derived from ``seed`` and ``path`` (stable across processes and versions)."""
    text = "\x1f".join([str(int(seed)), *(str(p) for p in path)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def stream(seed: int, *path: object) -> random.Random:
    """An independent ``random.Random`` for ``(seed, *path)``."""
    return random.Random(derive_seed(seed, *path))
