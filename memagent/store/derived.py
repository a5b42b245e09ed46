"""Tables of the derived tiers: profile statements, graph entities and relations, watermarks.

They live in the same LanceDB database as the episodes, each row with its
``user_id`` and every read filtered by it. Writes are upserts on ``id`` (one
commit per table per batch), so rewriting a row that a crashed run already
wrote changes nothing. Statements and relations have a full-text index on
their text; vectors are searched exactly, in memory, by the tiers.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
from lancedb.index import FTS, BTree

from memagent.store.lance import sql_str

STATEMENTS, ENTITIES, RELATIONS, WATERMARKS, TRACES = "statements", "entities", "relations", "watermarks", "traces"
USAGE, WEIGHTS, RATINGS = "usage", "weights", "ratings"
_TS = pa.timestamp("us", tz="UTC")
_IDS = pa.list_(pa.string())


def derived_schemas(dim: int) -> dict[str, pa.Schema]:
    vector = pa.field("vector", pa.list_(pa.float32(), dim), nullable=False)
    return {
        STATEMENTS: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("subject", pa.string()), pa.field("text", pa.string(), nullable=False),
            pa.field("category", pa.string()), pa.field("confidence", pa.float32()),
            pa.field("evidence_ids", _IDS), pa.field("valid_from", _TS), pa.field("valid_to", _TS),
            pa.field("session_id", pa.string()), pa.field("slot", pa.string()), pa.field("value", pa.string()),
            vector]),
        ENTITIES: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("name", pa.string()), pa.field("type", pa.string()), pa.field("aliases", _IDS),
            pa.field("evidence_ids", _IDS), vector]),
        RELATIONS: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("source", pa.string()), pa.field("relation", pa.string()), pa.field("target", pa.string()),
            pa.field("valid_from", _TS), pa.field("valid_to", _TS), pa.field("evidence_ids", _IDS),
            pa.field("confidence", pa.float32()), pa.field("text", pa.string(), nullable=False), vector]),
        WATERMARKS: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("seq", pa.int64()), pa.field("updated_at", _TS)]),
        TRACES: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("question", pa.string()), pa.field("route", pa.string()), pa.field("answer", pa.string()),
            pa.field("abstained", pa.bool_()), pa.field("evidence", pa.string()), pa.field("episode_ids", _IDS),
            pa.field("asked_at", _TS), pa.field("latency_ms", pa.float32()), pa.field("context_tokens", pa.int32()),
            pa.field("llm_calls", pa.int32())]),
        USAGE: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("kind", pa.string()), pa.field("created", _TS), pa.field("importance", pa.float32()),
            pa.field("accesses", pa.int32()), pa.field("last_reinforced", _TS), pa.field("feedback", pa.float32()),
            pa.field("route_feedback", pa.string()), pa.field("pinned", pa.bool_()), pa.field("archived", pa.bool_()),
            pa.field("reason", pa.string())]),
        WEIGHTS: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("key", pa.string()), pa.field("value", pa.float32())]),
        # one row per memory per rated answer: the rated question's vector keys the rating
        RATINGS: pa.schema([
            pa.field("id", pa.string(), nullable=False), pa.field("user_id", pa.string(), nullable=False),
            pa.field("item_id", pa.string()), pa.field("route", pa.string()), pa.field("delta", pa.float32()),
            pa.field("rated_at", _TS), vector]),
    }


class DerivedStore:
    """The derived tables of one LanceDB database (opened by ``LanceStore``)."""

    def __init__(self, db: Any, dimension: int) -> None:
        self.db = db
        self.schemas = derived_schemas(dimension)
        names = set(getattr(db.list_tables(), "tables", None) or db.list_tables())
        self.tables = {name: (db.open_table(name) if name in names
                              else db.create_table(name, schema=schema, exist_ok=True))
                       for name, schema in self.schemas.items()}
        self._lock = threading.RLock()
        self._indexed: set[str] = set()

    def upsert(self, kind: str, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace rows by ``id``, in one commit."""
        if not rows:
            return
        table = self.tables[kind]
        data = pa.Table.from_pylist(list(rows), schema=self.schemas[kind])
        with self._lock:
            table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
            self._ensure_indexes(kind)

    def _ensure_indexes(self, kind: str) -> None:
        if kind in self._indexed:
            return
        table = self.tables[kind]
        names = {ix.name for ix in table.list_indices()}
        if "user_id_idx" not in names:
            table.create_index("user_id", config=BTree(), replace=False)
        if kind in (STATEMENTS, RELATIONS) and "text_idx" not in names:
            table.create_index("text", config=FTS(with_position=False), replace=False)
        self._indexed.add(kind)

    def rows(self, kind: str, user_id: str) -> pa.Table:
        """Every row of one user in one table."""
        return (self.tables[kind].search().where(f"user_id = {sql_str(user_id)}")
                .limit(None).to_arrow())

    def lexical(self, kind: str, user_id: str, text: str, k: int) -> list[tuple[str, float]]:
        """Ids and BM25 scores of one user's rows whose text matches, best first."""
        from lancedb.query import MatchQuery

        if kind not in self._indexed and not self.tables[kind].list_indices():
            return []
        query = (self.tables[kind].search(MatchQuery(text, "text"), query_type="fts")
                 .where(f"user_id = {sql_str(user_id)}", prefilter=True).select(["id", "_score"]).limit(k))
        return [(r["id"], float(r["_score"])) for r in query.to_list()]

    def refresh(self) -> None:
        """Move every table to its latest version (rows other processes wrote)."""
        with self._lock:
            for table in self.tables.values():
                table.checkout_latest()

    def delete(self, kind: str, user_id: str, ids: Sequence[str]) -> None:
        if ids:
            id_list = ", ".join(sql_str(i) for i in ids)
            with self._lock:
                self.tables[kind].delete(f"user_id = {sql_str(user_id)} AND id IN ({id_list})")

    def delete_user(self, user_id: str) -> None:
        with self._lock:
            for table in self.tables.values():
                table.delete(f"user_id = {sql_str(user_id)}")

    def watermark(self, user_id: str) -> int:
        """The last episode ``seq`` consolidated for a user; -1 if none."""
        rows = self.rows(WATERMARKS, user_id).column("seq").to_pylist()
        return int(rows[0]) if rows else -1

    def set_watermark(self, user_id: str, seq: int) -> None:
        self.upsert(WATERMARKS, [{"id": f"watermark:{user_id}", "user_id": user_id, "seq": seq,
                                  "updated_at": datetime.now(timezone.utc)}])

    def optimize(self, cleanup_older_than: timedelta, purge: bool = False) -> None:
        """Compact, refresh indexes, drop old versions (``purge``: all of them, after a delete)."""
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for table in self.tables.values():
                table.optimize(cleanup_older_than=cleanup_older_than, delete_unverified=purge)
