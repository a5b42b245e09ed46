"""The storage contract: the few batched operations every tier needs, for every backend.

A backend stores records of the kinds in ``memagent.records`` (one class per
kind), each scoped by ``user_id``: no operation reads or writes across users,
except ``users()`` (who has episodes) and ``delete_user`` (which removes a
user from every kind). The tiers, the graphs and the facade see only this
class; ``InMemoryBackend`` (tests, notebooks), ``LanceBackend`` (the
embedded default) and ``PostgresBackend`` (many instances on one database)
implement it, and ``tests/conformance`` is what "a backend works" means.

Semantics every backend keeps:

* ``put`` writes a batch in one commit: all of it or none of it. An episode
  whose ``(user_id, id)`` is stored is skipped, so a retried batch adds nothing
  twice, unless ``replace=True`` (what ``Memory.update`` writes). Every other
  kind is replaced by id.
* reads see every write committed before them, by this object or (where
  ``capabilities.shared``) by any process on the same data, without ``refresh``.
* ``version(user_id, kind)`` is a token that changes after every commit of that
  user's rows of that kind, in any process, and after any ``delete_user``:
  in-process copies (the tiers' caches) compare it to decide whether to reload.
* ``scan`` returns a user's rows of one kind as an Arrow table (episodes in
  ``seq`` order), with a ``vector`` column for kinds that have vectors.
* ``text_search`` ranks by BM25 over a kind's full-text columns; ``vector_search``
  by cosine similarity; both return ``(id, score)`` best first, only of that
  user, optionally bounded by event time (episodes).
* every engine error surfaces as ``StorageError``; a capability a backend lacks
  raises ``UnsupportedError``.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from memagent.errors import MemagentError, StorageError, UnsupportedError
from memagent.locks import LeaderLock, UserLocks
from memagent.records import TEXT_FIELDS, Kind

Hits = list[tuple[str, float]]
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


def retried(engine: str, errors: Callable[[], tuple[type[BaseException], ...]],
            reason: Callable[[BaseException], str | None], *, attempts: int, backoff: tuple[float, float],
            after: Callable[[Any], None] | None = None) -> Callable[[F], F]:
    """A backend method's engine errors: retried with jittered exponential backoff while ``reason``
    names them transient (counted in the backend's ``retries`` by that reason, ``after(backend)``
    between tries), else raised as ``StorageError`` naming the store (``backend.name``);
    memagent's own errors pass through. ``errors`` is called at the first failure, so an engine
    module imported lazily stays so."""
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            delay = backoff[0]
            for attempt in range(attempts):
                try:
                    return method(self, *args, **kwargs)
                except MemagentError:
                    raise
                except Exception as exc:
                    if not isinstance(exc, errors()):
                        raise
                    why = reason(exc)
                    if why is None or attempt == attempts - 1:
                        raise StorageError(f"{engine} at {self.name}: {method.__name__} failed: {exc}") from exc
                    log.debug("%s %s: %s (%s), retry %d", engine, method.__name__, why, exc, attempt + 1)
                    self.retries[why] += 1
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, backoff[1])
                    if after is not None:
                        after(self)
            raise AssertionError("unreachable")
        return call  # type: ignore[return-value]
    return decorate


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the contract's core.

    ``persistent``: data outlives the process. ``shared``: several processes may
    open the same data (``refresh`` shows each the others' writes).
    ``ann_index``: large tables get an approximate vector index.
    """

    persistent: bool
    shared: bool = False
    ann_index: bool = False


class Backend(ABC):
    """Batched, user-scoped storage of memagent's records. See the module docstring."""

    capabilities: Capabilities
    dimension: int
    uri: str

    # --- writes --------------------------------------------------------------
    @abstractmethod
    def put(self, kind: Kind, records: Sequence[Any], vectors: np.ndarray | None = None, *,
            replace: bool = False) -> int:
        """Write records of one kind in one commit; return how many rows were written.

        Stored episodes are kept as they are unless ``replace``; other kinds are always replaced by id.
        """

    @abstractmethod
    def delete(self, kind: Kind, user_id: str, ids: Sequence[str] | None = None) -> int:
        """Delete a user's records of one kind by id (every one when ``ids`` is None); return how many."""

    def delete_user(self, user_id: str) -> None:
        """Remove a user from every kind, then purge whatever could still reveal the rows."""
        for kind in Kind:
            self.delete(kind, user_id)
        self.purge()

    # --- reads ---------------------------------------------------------------
    @abstractmethod
    def version(self, user_id: str, kind: Kind) -> str:
        """A token of the user's rows of one kind: equal tokens mean no commit happened in between.

        After it returns, reads of this object see at least what the token stands for.
        """

    @abstractmethod
    def get(self, kind: Kind, user_id: str, ids: Sequence[str]) -> list[Any]:
        """A user's records of one kind by id, in the order asked; unknown ids are skipped."""

    @abstractmethod
    def scan(self, kind: Kind, user_id: str, *, vectors: bool = True) -> pa.Table:
        """Every row of a user of one kind, in write order (``vectors=False`` leaves vectors out)."""

    @abstractmethod
    def count(self, kind: Kind, user_id: str) -> int:
        """How many records of one kind a user has."""

    @abstractmethod
    def users(self) -> list[str]:
        """Every user with at least one episode, sorted."""

    @abstractmethod
    def text_search(self, kind: Kind, user_id: str, text: str, k: int, *, field: str | None = None,
                    since: datetime | None = None, until: datetime | None = None) -> Hits:
        """Ids and BM25 scores of a user's records whose ``field`` matches ``text``, best first."""

    @abstractmethod
    def vector_search(self, kind: Kind, user_id: str, vector: np.ndarray, k: int, *,
                      since: datetime | None = None, until: datetime | None = None) -> Hits:
        """Ids and cosine similarities of a user's records nearest to ``vector``, best first."""

    # --- upkeep (no-ops where there is nothing to do) ----------------------------
    def refresh(self) -> None:
        """See what other processes committed since this object last looked."""

    def optimize(self) -> None:
        """Compact storage and refresh indexes."""

    def purge(self) -> None:
        """Drop old versions and anything else a deleted row could still be read from."""

    def close(self) -> None:
        """Release the engine's resources; the object must not be used afterwards."""

    def stats(self) -> dict[str, Any]:
        """Engine details for benchmarks and diagnostics (indexes, sizes)."""
        return {}

    # --- locks every process on this data shares ------------------------------------
    def user_locks(self) -> UserLocks:
        """Per-user locks that every process opening this data respects (lock files by default)."""
        return UserLocks(self.uri)

    def leader_lock(self, name: str = "scheduler") -> LeaderLock:
        """The lock that makes one process of all those on this data the scheduler's leader."""
        return LeaderLock(self.uri, name)

    # --- helpers for implementations ------------------------------------------------
    @staticmethod
    def text_field(kind: Kind, field: str | None) -> str:
        """The full-text column asked for, checked against the kind's indexed columns."""
        fields = TEXT_FIELDS.get(kind, ())
        chosen = field or (fields[0] if fields else "")
        if chosen not in fields:
            raise UnsupportedError(f"{kind.value} has no full-text column {chosen!r}; indexed: {list(fields)}")
        return chosen
