"""``InMemoryBackend``: the storage contract in plain Python and NumPy, for tests and notebooks.

Nothing persists. Semantics are those of every backend (the conformance suite
runs against it): user-scoped reads and writes, idempotent episode writes,
all-or-nothing batches, BM25 full-text search and exact cosine search. Its
full-text analysis follows LanceDB's default: lower case, ASCII folding, English
stop words dropped, Snowball (Porter 2) stems.

>>> from memagent.records import Kind, Weight
>>> backend = InMemoryBackend(dimension=4)
>>> backend.put(Kind.WEIGHT, [Weight("w1", "ana", "route:extraction", 1.5)])
1
>>> [w.value for w in backend.get(Kind.WEIGHT, "ana", ["w1"])], backend.get(Kind.WEIGHT, "bob", ["w1"])
([1.5], [])
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from memagent.errors import InvalidInputError, UnsupportedError
from memagent.records import VECTOR_KINDS, Kind
from memagent.store.base import Backend, Capabilities, Hits
from memagent.store.schema import codec, schema, to_rows
from memagent.store.text import InvertedIndex, forget_stems
from memagent.store.versions import LocalVersions


class _TextIndex:
    """BM25 over one user's column, built on first use, dropped on any write."""

    def __init__(self, ids: list[str], texts: list[str]) -> None:
        self.ids = ids
        self.index = InvertedIndex()
        self.index.add(texts)


class InMemoryBackend(Backend):
    """Every record in dictionaries, per kind and user; see the module docstring."""

    capabilities = Capabilities(persistent=False)

    def __init__(self, dimension: int, uri: str = "memory://") -> None:
        self.dimension = dimension
        self.uri = uri
        self._rows: dict[Kind, dict[str, dict[str, dict[str, Any]]]] = {kind: {} for kind in Kind}
        self._text: dict[tuple[Kind, str, str], _TextIndex] = {}
        self._lock = threading.RLock()
        self._versions = LocalVersions()

    # --- writes --------------------------------------------------------------
    def put(self, kind: Kind, records: Sequence[Any], vectors: np.ndarray | None = None, *,
            replace: bool = False) -> int:
        rows = to_rows(kind, records, vectors)  # converted whole before anything changes
        for row in rows:
            if not row.get("id") or not row.get("user_id"):
                raise InvalidInputError(f"{kind.value}: every record needs an id and a user_id")
            if kind in VECTOR_KINDS and len(row["vector"]) != self.dimension:
                raise InvalidInputError(f"{kind.value}: vectors must have {self.dimension} dimensions")
        with self._lock:
            written = 0
            for row in rows:
                stored = self._rows[kind].setdefault(row["user_id"], {})
                if kind is Kind.EPISODE and row["id"] in stored and not replace:
                    continue
                stored[row["id"]] = row
                written += 1
                self._changed(kind, row["user_id"])
            return written

    def delete(self, kind: Kind, user_id: str, ids: Sequence[str] | None = None) -> int:
        with self._lock:
            stored = self._rows[kind].get(user_id, {})
            gone = list(stored) if ids is None else [i for i in dict.fromkeys(ids) if i in stored]
            for i in gone:
                del stored[i]
            if not stored:
                self._rows[kind].pop(user_id, None)
            if gone:
                self._changed(kind, user_id)
            return len(gone)

    def _changed(self, kind: Kind, user_id: str) -> None:
        self._versions.bump(user_id, kind)
        for key in [k for k in self._text if k[0] is kind and k[1] == user_id]:
            del self._text[key]

    def delete_user(self, user_id: str) -> None:
        with self._lock:
            super().delete_user(user_id)
            self._versions.drop_user(user_id)

    # --- reads ---------------------------------------------------------------
    def version(self, user_id: str, kind: Kind) -> str:
        return self._versions.token(user_id, kind)

    def get(self, kind: Kind, user_id: str, ids: Sequence[str]) -> list[Any]:
        with self._lock:
            stored = self._rows[kind].get(user_id, {})
            rows = [stored[i] for i in ids if i in stored]
        make = codec(kind).from_row
        return [make(r) for r in rows]

    def scan(self, kind: Kind, user_id: str, *, vectors: bool = True) -> pa.Table:
        target = schema(kind, self.dimension)
        with self._lock:
            rows = list(self._rows[kind].get(user_id, {}).values())
        if kind is Kind.EPISODE:
            rows.sort(key=lambda r: r["seq"])
        if not vectors and kind in VECTOR_KINDS:
            target = pa.schema([f for f in target if f.name != "vector"])
            rows = [{k: v for k, v in r.items() if k != "vector"} for r in rows]
        return pa.Table.from_pylist(rows, schema=target)

    def count(self, kind: Kind, user_id: str) -> int:
        with self._lock:
            return len(self._rows[kind].get(user_id, {}))

    def users(self) -> list[str]:
        with self._lock:
            return sorted(u for u, rows in self._rows[Kind.EPISODE].items() if rows)

    def _candidates(self, kind: Kind, user_id: str, since: datetime | None,
                    until: datetime | None) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self._rows[kind].get(user_id, {}).values())
        if since is None and until is None:
            return rows
        if kind is not Kind.EPISODE:
            raise UnsupportedError(f"{kind.value} have no event time to filter on")
        return [r for r in rows if (since is None or r["event_time"] >= since)
                and (until is None or r["event_time"] < until)]

    def text_search(self, kind: Kind, user_id: str, text: str, k: int, *, field: str | None = None,
                    since: datetime | None = None, until: datetime | None = None) -> Hits:
        column = self.text_field(kind, field)
        with self._lock:
            index = self._text.get((kind, user_id, column))
            if index is None:
                rows = list(self._rows[kind].get(user_id, {}).values())
                index = self._text[(kind, user_id, column)] = _TextIndex(
                    [r["id"] for r in rows], [r[column] or "" for r in rows])
        allowed = {r["id"] for r in self._candidates(kind, user_id, since, until)}
        mask = np.array([i in allowed for i in index.ids], dtype=bool)
        return [(index.ids[n], score) for n, score in index.index.search(text, k, mask)]

    def vector_search(self, kind: Kind, user_id: str, vector: np.ndarray, k: int, *,
                      since: datetime | None = None, until: datetime | None = None) -> Hits:
        if kind not in VECTOR_KINDS:
            raise UnsupportedError(f"{kind.value} have no vectors")
        rows = self._candidates(kind, user_id, since, until)
        if not rows or k < 1:
            return []
        matrix = np.vstack([r["vector"] for r in rows]).astype(np.float32)
        query = np.asarray(vector, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1) * (float(np.linalg.norm(query)) or 1.0)
        sims = matrix @ query / np.where(norms > 0, norms, 1.0)
        top = np.argsort(-sims, kind="stable")[:k]
        return [(rows[n]["id"], float(sims[n])) for n in top]

    def purge(self) -> None:
        with self._lock:
            self._text.clear()
            forget_stems()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {kind.value: sum(len(r) for r in users.values()) for kind, users in self._rows.items()}
