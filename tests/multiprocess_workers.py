"""Work that the multi-process tests run in real child processes (spawned, so each is a fresh interpreter).

Every function opens its own ``Memory`` on the shared data directory (with the
hashing embedder: no model to load), reports through a queue, and records any
exception that is not a ``MemagentError`` as a failure instead of dying.
"""

from __future__ import annotations

import traceback
from typing import Any

from fakes import HashEmbedder
from memagent import MemagentError, Memory

WORDS = "rowing club garden violin paris bakery marathon chess piano harbour".split()


def message(key: str, n: int) -> dict[str, Any]:
    return {"id": key, "role": "user", "text": f"note {key} about {WORDS[n % len(WORDS)]}",
            "timestamp": f"2024-01-{1 + n % 28:02d}T10:00:00Z"}


def writer(data: str, user: str, batches: list[list[str]], queue: Any) -> None:
    """Add each batch of caller ids (a message per id), reporting each acknowledged batch and its episode ids."""
    try:
        with Memory(data, embedder=HashEmbedder()) as memory:
            for batch in batches:
                try:
                    ids = memory.add(user, [message(key, n) for n, key in enumerate(batch)], session_id="s")
                    queue.put(("added", (batch, ids)))
                except MemagentError as exc:
                    queue.put(("memagent_error", repr(exc)))
    except Exception:  # noqa: BLE001 - what the test counts
        queue.put(("raw_error", traceback.format_exc()))
    queue.put(("done", None))


def reader(data: str, user: str, rounds: int, queue: Any) -> None:
    """Count, search and page a user's episodes again and again; counts must never go down."""
    last = 0
    try:
        with Memory(data, embedder=HashEmbedder()) as memory:
            for n in range(rounds):
                try:
                    count = memory.count(user)
                    if count < last:
                        queue.put(("went_back", (last, count)))
                    last = count
                    memory.search(user, f"about {WORDS[n % len(WORDS)]}", k=5)
                    memory.list(user, limit=5)
                except MemagentError as exc:
                    queue.put(("memagent_error", repr(exc)))
    except Exception:  # noqa: BLE001 - what the test counts
        queue.put(("raw_error", traceback.format_exc()))
    queue.put(("done", last))


def opener(folders: list[str], barrier: Any, queue: Any) -> None:
    """Open each new data directory at the same moment as the other openers; report what happened."""
    from memagent.store import LanceBackend

    for folder in folders:
        barrier.wait(timeout=120)
        try:
            LanceBackend(folder, 8, background_upkeep=False).close()
            queue.put(("opened", folder))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            queue.put(("failed", f"{type(exc).__name__}: {exc}"))
