"""The ``memagent`` command line: demo, add, search, export, import, delete-user, eval, serve, keys, mcp.

    memagent demo
    memagent --data-dir ./mem add alice "I adopted a dog named Rex" --timestamp 2023-05-08
    memagent --data-dir ./mem search alice "What is my dog called?"
    memagent eval locomo locomo10.json --out runs/locomo
    memagent --data-dir ./mem serve --consolidate-every 60      # until SIGINT or SIGTERM
    memagent --data-dir ./mem serve --once                      # each job once (cron)
    memagent keys add acme --file keys.toml                     # prints a new API key once
    memagent --data-dir ./mem serve --http --keys keys.toml --host 0.0.0.0 --workers 2
    memagent --data-dir ./mem mcp --user alice                  # an MCP server over stdio
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from memagent import mcp_server
from memagent.errors import MemagentError

DEFAULT_DATA_DIR = "memagent-data"
WORKER_HEALTHCHECK_S = 300


def _memory(args: argparse.Namespace) -> Any:
    from memagent.memory import Memory

    return Memory(args.data_dir)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg", file=sys.stderr, disable=None)


def _print_hits(hits: Sequence[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps([{"score": h.score, "signals": h.signal_names, **h.episode.to_json()} for h in hits],
                         ensure_ascii=False, indent=2))
        return
    if not hits:
        print("  (no hits)")
    for rank, hit in enumerate(hits, start=1):
        e = hit.episode
        print(f"  {rank:>2}. {hit.score:.4f} [{', '.join(hit.signal_names)}] "
              f"{e.event_time:%Y-%m-%d} {e.session_id} {e.role}: {e.text}")


def load_sample() -> dict[str, Any]:
    """The sample conversation shipped in ``memagent.examples``."""
    text = resources.files("memagent.examples").joinpath("sample_conversation.json").read_text("utf-8")
    return json.loads(text)


def cmd_demo(args: argparse.Namespace) -> int:
    from memagent.memory import Memory

    sample = load_sample()
    data_dir = args.data_dir if args.data_dir_given else tempfile.mkdtemp(prefix="memagent-demo-")
    print(f"memagent demo: data directory {data_dir}")
    start = time.perf_counter()
    memory = Memory(data_dir)
    print(f"loaded the embedder ({memory.embedder.name}, {memory.embedder.dimension} dimensions) "
          f"in {time.perf_counter() - start:.1f} s")
    user = sample["user_id"]
    total = sum(len(s["messages"]) for s in sample["sessions"])
    start = time.perf_counter()
    with _progress(total, "ingest") as bar:
        for session in sample["sessions"]:
            messages = [{**m, "timestamp": session["date"]} for m in session["messages"]]
            memory.add(user, messages, session_id=session["session_id"])
            bar.update(len(messages))
    print(f"stored {memory.count(user)} episodes of user {user!r} from {len(sample['sessions'])} sessions "
          f"in {time.perf_counter() - start:.2f} s\n")
    for query in sample["queries"]:
        start = time.perf_counter()
        hits = memory.search(user, query["question"], k=args.k, now=query["now"])
        print(f"? {query['question']}  (asked {query['now'][:10]}, {1000 * (time.perf_counter() - start):.0f} ms)")
        _print_hits(hits, False)
        print()
    print("signals: lexical = BM25 full text, vector = embedding similarity, "
          "time = inside a date range named in the question, neighbour = adjacent turn of a hit, "
          "fact = a profile statement or graph fact drawn from that turn\n")
    _show_consolidation(memory, user)
    return 0


def _show_consolidation(memory: Any, user: str) -> None:
    start = time.perf_counter()
    counts = memory.consolidate(user)
    print(f"consolidated {counts.get('episodes', 0)} episodes in {time.perf_counter() - start:.2f} s, no LLM: "
          f"{counts.get('added', 0)} statements added, {counts.get('merged', 0)} merged, "
          f"{counts.get('closed', 0)} closed\n")
    print(f"profile of {user!r} (valid from -> to):")
    for s in memory.tiers.profile(user).statements:
        if s.kind == "statement":
            until = f"{s.valid_to:%Y-%m-%d}" if s.valid_to else "now"
            print(f"  [{s.category.value}] {s.text}  ({s.valid_from:%Y-%m-%d} -> {until}, "
                  f"confidence {s.confidence:.2f}, {len(s.evidence_ids)} evidence)")
    me = memory.entity(user, user)
    if me is not None:
        print(f"\nknowledge graph facts about {me.name} (closed ones show when they ended):")
        for relation in sorted(memory.tiers.graph(user).facts_ever(me.id), key=lambda r: r.valid_from)[:10]:
            print(f"  {memory.describe(user, relation)}")


def cmd_add(args: argparse.Namespace) -> int:
    memory = _memory(args)
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            try:
                messages = [json.loads(line) for line in handle if line.strip()]
            except json.JSONDecodeError as exc:
                raise SystemExit(f"error: {args.file}: not JSON Lines: {exc}") from None
    else:
        messages = [{"text": text, "role": args.role, "timestamp": args.timestamp, "id": args.id}
                    for text in args.text]
    ids = memory.add(args.user, messages, session_id=args.session)
    for episode_id in ids:
        print(episode_id)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    memory = _memory(args)
    hits = memory.search(args.user, args.query, k=args.k, since=args.since, until=args.until, now=args.now)
    _print_hits(hits, args.json)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    memory = _memory(args)
    if args.output:
        count = memory.export(args.user, args.output)
        print(f"exported {count} episodes of {args.user!r} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(memory.export(args.user))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    memory = _memory(args)
    with open(args.file, encoding="utf-8", errors="strict") as handle:
        total = sum(1 for line in handle if line.strip())
    with _progress(total, "import") as bar:
        ids = memory.import_(args.file, user_id=args.user, progress=bar.update)
    print(f"imported {len(ids)} new episodes ({total - len(ids)} already stored)", file=sys.stderr)
    return 0


def cmd_delete_user(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print("error: refusing to delete without --yes when not interactive", file=sys.stderr)
            return 2
        if input(f"delete every memory of {args.user!r}? [y/N] ").strip().lower() != "y":
            return 1
    count = _memory(args).delete_user(args.user)
    print(f"deleted {count} episodes of {args.user!r} from every table and index")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from memagent.eval import harness

    out = args.out or f"memagent-eval-{args.benchmark}"
    ks = tuple(int(k) for k in args.k.split(",")) if args.k else None
    if args.benchmark == "locomo":
        convs = args.conversations.split(",") if args.conversations else None
        summary = harness.run_locomo(args.file, out, limit=args.limit, conversations=convs,
                                     ks=ks or harness.LOCOMO_KS)
    else:
        summary = harness.run_longmemeval(args.file, out, limit=args.limit, ks=ks or harness.LONGMEMEVAL_KS)
    print(summary["report"])
    print(f"records: {out}/records.jsonl | summary: {out}/summary.json | plot: {out}/plot.png")
    return 0


def _schedule_settings(args: argparse.Namespace) -> Any:
    """The schedule of ``serve``, checked before the embedder loads."""
    from pydantic import ValidationError

    from memagent.config import Config, ScheduleSettings
    from memagent.errors import ConfigError

    given = {"consolidate_every_s": args.consolidate_every, "forget_every_s": args.forget_every,
             "maintain_every_s": args.maintain_every, "job_store": args.job_store}
    try:
        return ScheduleSettings(**{**Config().schedule.model_dump(),
                                   **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as exc:
        raise ConfigError(f"serve: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from memagent.scheduler import JOBS, MemoryScheduler

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = _schedule_settings(args)
    if args.http:
        return _serve_http(args, settings)
    memory = _memory(args)
    failed = 0
    try:
        scheduler = MemoryScheduler(memory, settings)
        if args.once:
            for name in JOBS:
                try:
                    scheduler.run_now(name)
                except Exception:  # logged with its traceback by the scheduler
                    failed += 1
        else:
            stop = threading.Event()
            handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                scheduler.start()
                print(f"memagent serve: {args.data_dir}: consolidate every {settings.consolidate_every_s:g} s, "
                      f"forget every {settings.forget_every_s:g} s, maintain every {settings.maintain_every_s:g} s; "
                      "SIGINT or SIGTERM stops", flush=True)
                while not stop.wait(0.5):
                    pass
                print("memagent serve: stopping (waiting for a running job)", flush=True)
            finally:
                scheduler.stop(wait=True)
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
    finally:
        memory.close()
    print(f"memagent serve: done; {scheduler.summary()}", flush=True)
    return 1 if failed else 0


def _serve_http(args: argparse.Namespace, settings: Any) -> int:
    """``serve --http``: uvicorn workers, each with its own Memory on the data directory, the schedule beside."""
    try:
        import uvicorn

        from memagent.server import app as server
        from memagent.server.keys import ENV_KEYS
    except ImportError as exc:
        print(f"error: serve --http needs the server extra (pip install 'memagent[server]'): {exc}", file=sys.stderr)
        return 2
    if args.once:
        print("error: --once runs the jobs without a server; leave out --http or --once", file=sys.stderr)
        return 2
    keys = server.load_keys(args.keys, os.environ.get(ENV_KEYS) or None)
    if keys is None and not server.is_loopback(args.host):
        print(f"error: refusing to serve {args.host} without API keys: anyone who reaches it would reach every "
              f"user. Give --keys FILE (memagent keys add TENANT --file FILE makes one) or bind 127.0.0.1",
              file=sys.stderr)
        return 2
    if keys is not None and not len(keys):
        print("warning: the keys file holds no key: every request will be refused", file=sys.stderr)
    data_dir = args.data_dir if "://" in args.data_dir else os.path.abspath(args.data_dir)
    os.environ.update({server.ENV_DATA_DIR: data_dir, server.ENV_HOST: args.host,
                       server.ENV_KEYS_FILE: os.path.abspath(args.keys) if args.keys else "",
                       server.ENV_SCHEDULE: "0" if args.no_schedule else settings.model_dump_json()})
    print(f"memagent serve --http: {data_dir} on http://{args.host}:{args.port} ({args.workers} worker"
          f"{'s' if args.workers > 1 else ''}; docs at /docs); SIGINT or SIGTERM stops", flush=True)
    uvicorn.run("memagent.server.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", access_log=args.access_log, timeout_graceful_shutdown=30,
                # a worker loads the embedder at start and may be busy for seconds: uvicorn's 5 s default
                # health check would kill and restart it (dropping its connections)
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S)
    return 0


def cmd_keys_add(args: argparse.Namespace) -> int:
    from memagent.server.keys import add_key

    key = add_key(args.file, args.tenant)
    print(key)
    print(f"added a key of tenant {args.tenant!r} to {args.file}; only its SHA-256 digest is stored, "
          "so this is the only time the key is shown", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memagent", description="Lifelong personal memory for LLM assistants.")
    parser.add_argument("--data-dir", default=None,
                        help=f"data directory or LanceDB URI (default ./{DEFAULT_DATA_DIR})")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="ingest the shipped sample conversation and run a few searches")
    demo.add_argument("-k", type=int, default=3)
    demo.set_defaults(func=cmd_demo)

    add = sub.add_parser("add", help="store messages of a user")
    add.add_argument("user")
    add.add_argument("text", nargs="*", help="one or more message texts")
    add.add_argument("--file", help="JSON Lines of messages ({text, role, timestamp, id, metadata})")
    add.add_argument("--role", default="user")
    add.add_argument("--session", default=None)
    add.add_argument("--timestamp", default=None)
    add.add_argument("--id", default=None, help="your message id (re-adding it stores nothing new)")
    add.set_defaults(func=cmd_add)

    search = sub.add_parser("search", help="search a user's memory")
    search.add_argument("user")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--since")
    search.add_argument("--until")
    search.add_argument("--now", help="reference time for 'last May', 'two weeks ago'...")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=cmd_search)

    export = sub.add_parser("export", help="write a user's episodes as JSON Lines")
    export.add_argument("user")
    export.add_argument("-o", "--output")
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser("import", help="load a JSON Lines export")
    imp.add_argument("file")
    imp.add_argument("--user", help="store every episode under this user instead")
    imp.set_defaults(func=cmd_import)

    evaluate = sub.add_parser("eval", help="run LoCoMo or LongMemEval and report the official metrics")
    evaluate.add_argument("benchmark", choices=["locomo", "longmemeval"])
    evaluate.add_argument("file")
    evaluate.add_argument("--out", help="run directory (resumed if it exists); default memagent-eval-<benchmark>")
    evaluate.add_argument("--limit", type=int, help="only the first N questions")
    evaluate.add_argument("--conversations", help="LoCoMo sample ids, comma-separated")
    evaluate.add_argument("--k", help="comma-separated k values for recall@k")
    evaluate.set_defaults(func=cmd_eval)

    delete = sub.add_parser("delete-user", help="remove everything of a user")
    delete.add_argument("user")
    delete.add_argument("--yes", action="store_true")
    delete.set_defaults(func=cmd_delete_user)

    serve = sub.add_parser("serve", help="run consolidation, forgetting and maintenance on a schedule; "
                                         "with --http, the HTTP API too")
    serve.add_argument("--consolidate-every", type=float, metavar="S", help="seconds between consolidation runs")
    serve.add_argument("--forget-every", type=float, metavar="S", help="seconds between forgetting runs")
    serve.add_argument("--maintain-every", type=float, metavar="S", help="seconds between storage maintenance runs")
    serve.add_argument("--job-store", metavar="URL", help='"memory" (default) or a SQLAlchemy URL (the sql extra)')
    serve.add_argument("--once", action="store_true",
                       help="run each job once and exit (for cron); exit 1 if one failed")
    http = serve.add_argument_group("HTTP service (the server extra)")
    http.add_argument("--http", action="store_true", help="serve the HTTP API (OpenAPI docs at /docs)")
    http.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need --keys)")
    http.add_argument("--port", type=int, default=8000)
    http.add_argument("--workers", type=int, default=1, help="server processes on the data directory")
    http.add_argument("--keys", metavar="FILE", help="API keys file (TOML or JSON): tenant = [sha256 digests]")
    http.add_argument("--no-schedule", action="store_true", help="serve without running the schedule")
    http.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage the API keys of memagent serve --http")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_add = keys_sub.add_parser("add", help="make a key of a tenant: print it once, store only its digest")
    keys_add.add_argument("tenant", help="letters, digits, '_' or '-'")
    keys_add.add_argument("--file", required=True, help="the keys file (made if missing; *.json for JSON)")
    keys_add.set_defaults(func=cmd_keys_add)

    mcp_server.add_arguments(sub.add_parser("mcp", help="serve a memory to MCP clients (stdio or streamable HTTP)"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.data_dir_given = args.data_dir is not None
    args.data_dir = args.data_dir or DEFAULT_DATA_DIR
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return args.func(args)
    except MemagentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
