"""The PostgreSQL schema of ``PostgresBackend``, derived from the record classes, and its migrations.

Columns follow ``memagent.store.schema``: ``str`` is ``text``, ``int`` an
``integer`` (``Int64`` a ``bigint``), ``float`` a ``real`` (float32, like every
backend), ``datetime`` a ``timestamptz``, a tuple of strings ``text[]``, JSON
``text``; vector kinds get ``vector(dimension)``. Each full-text field ``f``
adds ``f_tsv`` (``to_tsvector('simple', ...)`` of its analysed terms, which a write
stages as ``f_terms``; GIN-indexed) and ``f_terms_len`` (how many terms: BM25's
document length). Every table has ``tenant`` (generated from the user id) and
``seq_no`` (write order).

``SCHEMA_VERSION`` counts migrations: ``MIGRATIONS[n]`` takes a database from
version ``n`` to ``n + 1`` and runs in the opening transaction.

>>> from memagent.records import Kind
>>> table(Kind.EPISODE), column_sql(Kind.EPISODE, "seq", 4), column_sql(Kind.EPISODE, "vector", 4)
('memagent_episodes', 'seq bigint', 'vector vector(4)')
"""

from __future__ import annotations

import pyarrow as pa

from memagent.records import TEXT_FIELDS, VECTOR_KINDS, Kind
from memagent.store.schema import codec

SCHEMA_VERSION = 1
MIGRATIONS: dict[int, list[str]] = {}  # version n -> the statements that make it n + 1

_TYPES = {pa.string(): "text", pa.int32(): "integer", pa.int64(): "bigint", pa.float32(): "real",
          pa.bool_(): "boolean", pa.list_(pa.string()): "text[]"}


def table(kind: Kind) -> str:
    return f"memagent_{kind.value}"


def terms_column(field: str) -> str:
    return f"{field}_terms"


def tsv_column(field: str) -> str:
    return f"{field}_tsv"


def column_sql(kind: Kind, name: str, dimension: int) -> str:
    """``name type`` of one stored column (record fields, the vector, analysed terms)."""
    if name == "vector":
        return f"vector vector({int(dimension)})"
    if name.endswith("_terms_len"):
        return f"{name} integer"
    if name.endswith("_terms"):
        return f"{name} text"
    column = next(c for c in codec(kind).columns if c.name == name)
    if pa.types.is_timestamp(column.type):
        return f"{name} timestamptz"
    return f"{name} {_TYPES[column.type]}"


def _create_table(kind: Kind, dimension: int) -> list[str]:
    name = table(kind)
    columns = [column_sql(kind, c.name, dimension) + (" NOT NULL" if c.name in ("id", "user_id") else "")
               for c in codec(kind).columns]
    if kind in VECTOR_KINDS:
        columns.append(column_sql(kind, "vector", dimension) + " NOT NULL")
    for field in TEXT_FIELDS.get(kind, ()):
        terms = terms_column(field)
        columns += [f"{terms}_len integer NOT NULL DEFAULT 0", f"{tsv_column(field)} tsvector NOT NULL DEFAULT ''"]
    columns += ["tenant text GENERATED ALWAYS AS (CASE WHEN strpos(user_id, ':') > 0 "
                "THEN split_part(user_id, ':', 1) ELSE '' END) STORED",
                "seq_no bigint GENERATED ALWAYS AS IDENTITY", "PRIMARY KEY (user_id, id)"]
    statements = [f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})",
                  f"CREATE INDEX IF NOT EXISTS {name}_order ON {name} (user_id, seq_no)",
                  f"CREATE INDEX IF NOT EXISTS {name}_tenant ON {name} (tenant)"]
    if kind is Kind.EPISODE:
        statements.append(f"CREATE INDEX IF NOT EXISTS {name}_time ON {name} (user_id, event_time)")
    statements += [f"CREATE INDEX IF NOT EXISTS {name}_{tsv_column(f)} ON {name} USING gin ({tsv_column(f)})"
                   for f in TEXT_FIELDS.get(kind, ())]
    return statements


def bootstrap(dimension: int) -> list[str]:
    """The statements that make a database hold memagent's tables (each a no-op where done)."""
    statements = ["CREATE EXTENSION IF NOT EXISTS vector",
                  "CREATE TABLE IF NOT EXISTS memagent_meta (key text PRIMARY KEY, value text NOT NULL)",
                  "CREATE SEQUENCE IF NOT EXISTS memagent_change",
                  "CREATE TABLE IF NOT EXISTS memagent_versions (user_id text NOT NULL, kind text NOT NULL, "
                  "token bigint NOT NULL, PRIMARY KEY (user_id, kind))"]
    for kind in Kind:
        statements += _create_table(kind, dimension)
    return statements
