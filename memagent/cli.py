"""The ``memagent`` command line: a thin layer over ``memagent.Memory``.

    memagent demo
    memagent --data-dir ./mem add alice "I adopted a dog named Rex" --timestamp 2023-05-08
    memagent --data-dir ./mem search alice "What is my dog called?"
    memagent --data-dir ./mem consolidate alice
    memagent --data-dir ./mem ask alice "What is my dog called?" --json
    memagent --data-dir ./mem feedback TRACE_ID bad --correction "My dog is called Max." --user alice
    memagent --data-dir ./mem list alice --offset 50 --limit 50
    memagent eval locomo locomo10.json --out runs/locomo --limit 20
    memagent --data-dir ./mem serve --consolidate-every 60      # until SIGINT or SIGTERM
    memagent --data-dir ./mem serve --once                      # each job once (cron)
    memagent keys add acme --file keys.toml                     # prints a new API key once
    memagent --data-dir ./mem serve --http --keys keys.toml --host 0.0.0.0 --workers 2
    memagent --data-dir ./mem mcp --user alice                  # an MCP server over stdio

The data directory is ``--data-dir``, else ``$MEMAGENT_DATA_DIR``, else ``./memagent-data``
(``demo`` uses a new temporary directory unless ``--data-dir`` is given). Only the
commands that write (add, import, serve, mcp, demo) create it; the others fail on a
directory that does not exist instead of creating an empty memory.

``--json`` (every command but ``mcp``, whose stdout is the protocol) prints one JSON
document on stdout, shaped as the HTTP API's response to the same call (``search``
keeps its flat hits: the episode's fields beside ``score`` and ``signals``); progress
and notes go to stderr.

Exit status: 0 done; 1 a runtime error (an unknown user, episode or trace id, a data
directory that does not exist, a storage or lock failure, an unreadable file: any
other ``MemagentError`` or ``OSError``); 2 a usage error (argparse's own, and the
arguments or input files memagent refuses before doing anything:
``InvalidInputError``, ``ConfigError`` but ``EmbedderMismatchError``, a file that is
not UTF-8); 130 interrupted (Ctrl-C). Errors are one line on stderr,
``memagent: error: ...``; an interruption is ``memagent: interrupted``. An
interrupted ``import`` keeps the batches it finished: run it again and it stores the
rest (episodes already stored are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from memagent import mcp_server
from memagent.config import redacted
from memagent.errors import ConfigError, EmbedderMismatchError, InvalidInputError, MemagentError, NotFoundError
from memagent.types import Route

DEFAULT_DATA_DIR = "memagent-data"
ENV_DATA_DIR = "MEMAGENT_DATA_DIR"
ENV_CONFIG = "MEMAGENT_CONFIG"
ENV_LLM = "MEMAGENT_LLM"
WORKER_HEALTHCHECK_S = 300
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SHOWN_EVIDENCE = 5


# --- helpers ------------------------------------------------------------------------
def _memory(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The ``Memory`` of the data directory; unless ``create``, the directory must exist."""
    from memagent.memory import Memory

    path = args.data_dir
    if not create and "://" not in path and not os.path.isdir(path):
        raise NotFoundError(f"no data directory at {os.path.abspath(path)} (from {args.data_dir_from}); "
                            "add or import creates one")
    return Memory(path, config=config_of(args), llm=llm_of(args))


def llm_of(args: argparse.Namespace) -> str | None:
    """The chat model of ``--llm`` (``$MEMAGENT_LLM``): ``gguf:/path/model.gguf`` or ``provider:model``."""
    return getattr(args, "llm", None) or os.environ.get(ENV_LLM) or None


def config_of(args: argparse.Namespace) -> Any:
    """The settings of ``--config`` (a preset name or a TOML file; ``$MEMAGENT_CONFIG``), else the defaults."""
    from memagent.config import Config
    from memagent.presets import load_preset

    source = getattr(args, "config", None) or os.environ.get(ENV_CONFIG) or None
    return load_preset(source) if source else Config()


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="msg", file=sys.stderr, disable=None)


def _print_json(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2, default=str))


def _wire(model: str, obj: Any, user_id: str | None = None) -> dict[str, Any]:
    """``obj`` in the JSON form of the HTTP API (``memagent.wire``'s ``model``)."""
    from memagent import wire

    result: dict[str, Any] = getattr(wire, model).of(obj, user_id=user_id).model_dump(mode="json")
    return result


def _silent(*_: Any, **__: Any) -> None:
    """``print`` for output that ``--json`` replaces."""


def _positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _hit_json(hit: Any) -> dict[str, Any]:
    return {"score": hit.score, "signals": hit.signal_names, **hit.episode.to_json()}


def _print_hits(hits: Sequence[Any], as_json: bool) -> None:
    if as_json:
        _print_json([_hit_json(h) for h in hits])
        return
    if not hits:
        print("  (no hits)")
    for rank, hit in enumerate(hits, start=1):
        e = hit.episode
        print(f"  {rank:>2}. {hit.score:.4f} [{', '.join(hit.signal_names)}] "
              f"{e.event_time:%Y-%m-%d} {e.session_id} {e.role}: {e.text}")


def _episode_line(e: Any) -> str:
    return f"{e.id}  {e.event_time:%Y-%m-%d %H:%M} {e.session_id} {e.role}: {e.text}"


def _statement_line(s: Any) -> str:
    until = f"{s.valid_to:%Y-%m-%d}" if s.valid_to else "now"
    return (f"[{s.category.value}] {s.text}  ({s.valid_from:%Y-%m-%d} -> {until}, "
            f"confidence {s.confidence:.2f}, {len(s.evidence_ids)} evidence)")


def load_sample() -> dict[str, Any]:
    """The sample conversation shipped in ``memagent.examples``."""
    text = resources.files("memagent.examples").joinpath("sample_conversation.json").read_text("utf-8")
    return json.loads(text)


# --- demo -----------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from memagent.memory import Memory

    say = _silent if args.json else print
    sample = load_sample()
    data_dir = args.data_dir if args.data_dir_given else tempfile.mkdtemp(prefix="memagent-demo-")
    print(f"memagent demo: data directory {data_dir}", file=sys.stderr if args.json else sys.stdout)
    start = time.perf_counter()
    with Memory(data_dir) as memory:
        say(f"loaded the embedder ({memory.embedder.name}, {memory.embedder.dimension} dimensions) "
            f"in {time.perf_counter() - start:.1f} s")
        user = sample["user_id"]
        total = sum(len(s["messages"]) for s in sample["sessions"])
        start = time.perf_counter()
        with _progress(total, "ingest") as bar:
            for session in sample["sessions"]:
                messages = [{**m, "timestamp": session["date"]} for m in session["messages"]]
                memory.add(user, messages, session_id=session["session_id"])
                bar.update(len(messages))
        say(f"stored {memory.count(user)} episodes of user {user!r} from {len(sample['sessions'])} sessions "
            f"in {time.perf_counter() - start:.2f} s\n")
        queries = []
        for query in sample["queries"]:
            start = time.perf_counter()
            hits = memory.search(user, query["question"], k=args.k, now=query["now"])
            say(f"? {query['question']}  (asked {query['now'][:10]}, {1000 * (time.perf_counter() - start):.0f} ms)")
            if not args.json:
                _print_hits(hits, False)
            say()
            queries.append({"question": query["question"], "now": query["now"], "hits": [_hit_json(h) for h in hits]})
        say("signals: lexical = BM25 full text, vector = embedding similarity, "
            "time = inside a date range named in the question, neighbour = adjacent turn of a hit, "
            "fact = a profile statement or graph fact drawn from that turn\n")
        derived = _show_consolidation(memory, user, say)
        if args.json:
            _print_json({"data_dir": data_dir, "user": user, "episodes": memory.count(user), "queries": queries,
                         **derived})
    return EXIT_OK


def _show_consolidation(memory: Any, user: str, say: Callable[..., None] = print) -> dict[str, Any]:
    start = time.perf_counter()
    counts = memory.consolidate(user)
    say(f"consolidated {counts.get('episodes', 0)} episodes in {time.perf_counter() - start:.2f} s, no LLM: "
        f"{counts.get('added', 0)} statements added, {counts.get('merged', 0)} merged, "
        f"{counts.get('closed', 0)} closed\n")
    say(f"profile of {user!r} (valid from -> to):")
    statements = [s for s in memory.tiers.profile(user).statements if s.kind == "statement"]
    for s in statements:
        say(f"  {_statement_line(s)}")
    facts: list[str] = []
    me = memory.entity(user, user)
    if me is not None:
        say(f"\nknowledge graph facts about {me.name} (closed ones show when they ended):")
        for relation in sorted(memory.tiers.graph(user).facts_ever(me.id), key=lambda r: r.valid_from)[:10]:
            facts.append(memory.describe(user, relation))
            say(f"  {facts[-1]}")
    return {"consolidation": counts, "profile": [_wire("StatementOut", s) for s in statements], "facts": facts}


# --- writing --------------------------------------------------------------------------
def _messages(args: argparse.Namespace) -> list[Any]:
    if args.file and args.text:
        raise InvalidInputError("give message texts or --file, not both")
    if not args.file:
        if not args.text:
            raise InvalidInputError("give one or more message texts, or --file")
        return [{"text": text, "role": args.role, "timestamp": args.timestamp, "id": args.id} for text in args.text]
    with open(args.file, encoding="utf-8") as handle:
        try:
            return [json.loads(line) for line in handle if line.strip()]
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{args.file}: not JSON Lines: {exc}") from None


def cmd_add(args: argparse.Namespace) -> int:
    messages = _messages(args)
    with _memory(args, create=True) as memory:
        ids = memory.add(args.user, messages, session_id=args.session)
    if args.json:
        _print_json({"ids": ids})
    else:
        print("\n".join(ids))
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8", errors="strict") as handle:
        total = sum(1 for line in handle if line.strip())
    with _memory(args, create=True) as memory, _progress(total, "import") as bar:
        ids = memory.import_(args.file, user_id=args.user, batch_size=args.batch_size, progress=bar.update)
    print(f"imported {len(ids)} new episodes ({total - len(ids)} already stored)", file=sys.stderr)
    if args.json:
        _print_json({"imported": len(ids), "already_stored": total - len(ids), "ids": ids})
    return EXIT_OK


def cmd_feedback(args: argparse.Namespace) -> int:
    try:
        rating: str | float = float(args.rating)
    except ValueError:
        rating = args.rating
    with _memory(args) as memory:
        out = memory.feedback(args.trace_id, rating, correction=args.correction, at=args.at, user_id=args.user)
    if args.json:
        _print_json(_wire("FeedbackOut", out))
        return EXIT_OK
    print(f"rated {out['rated']} memories of user {out['user_id']!r} (route {out['route']})")
    if out["correction_id"]:
        print(f"stored the correction as episode {out['correction_id']}")
    return EXIT_OK


def cmd_consolidate(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        counts = memory.consolidate(args.user)
    if args.json:
        _print_json(counts)
        return EXIT_OK
    whose = f" of {args.user!r}" if args.user else ""
    print(f"consolidated {counts.get('episodes', 0)} episodes{whose}: {counts.get('added', 0)} statements added, "
          f"{counts.get('merged', 0)} merged, {counts.get('closed', 0)} closed")
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        decisions = memory.forget(args.user, dry_run=not args.apply, at=args.at)
    if args.json:
        _print_json([_wire("DecisionOut", d) for d in decisions])
        return EXIT_OK
    verb = {"archive": "archived", "restore": "restored"} if args.apply else {}
    for d in decisions:
        action = verb.get(d.action.value, f"would {d.action.value}")
        print(f"{action} {d.kind} {d.item_id}: {d.reason}")
    if not decisions:
        print("nothing to archive or restore")
    elif not args.apply:
        print("dry run: nothing changed; --apply does it", file=sys.stderr)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        memory.delete(args.user, args.episode_id)
    if args.json:
        _print_json({"deleted": 1})
    else:
        print(f"deleted episode {args.episode_id} of {args.user!r} and what was drawn from it alone")
    return EXIT_OK


def cmd_delete_user(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInputError("refusing to delete without --yes when not interactive")
        if input(f"delete every memory of {args.user!r}? [y/N] ").strip().lower() != "y":
            print("memagent: nothing deleted", file=sys.stderr)
            return EXIT_ERROR
    with _memory(args) as memory:
        count = memory.delete_user(args.user)
    if args.json:
        _print_json({"deleted": count})
    else:
        print(f"deleted {count} episodes of {args.user!r} from every table and index")
    return EXIT_OK


# --- reading --------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        hits = memory.search(args.user, args.query, k=args.k, since=args.since, until=args.until, now=args.now)
    _print_hits(hits, args.json)
    return EXIT_OK


def cmd_ask(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        answer = memory.ask(args.user, args.question, at=args.at, route=args.route)
    if args.json:
        _print_json(_wire("AnswerOut", answer))
        return EXIT_OK
    print(answer.text)
    abstained = ", abstained" if answer.abstained else ""
    print(f"  route {answer.route.value}{abstained}; trace {answer.trace_id} "
          f"(memagent feedback {answer.trace_id} good|bad)")
    for rank, ev in enumerate(answer.evidence[:SHOWN_EVIDENCE], start=1):
        when = f" {ev.event_time:%Y-%m-%d}" if ev.event_time else ""
        speaker = f" {ev.role}:" if ev.role and ev.kind == "episode" else ""
        print(f"  {rank:>2}. {ev.score:.4f} {ev.kind}{when}{speaker} {ev.text}")
    if len(answer.evidence) > SHOWN_EVIDENCE:
        print(f"  ... {len(answer.evidence) - SHOWN_EVIDENCE} more (--json shows all)")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        statements = memory.profile(args.user, at=args.at)
    if args.json:
        _print_json([_wire("StatementOut", s) for s in statements])
        return EXIT_OK
    for s in statements:
        print(_statement_line(s))
    if not statements:
        print(f"(no profile statements of {args.user!r}; consolidate makes them)")
    return EXIT_OK


def cmd_facts(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        relations = memory.facts(args.user, args.entity, at=args.at)
        lines = [memory.describe(args.user, r) for r in relations]
    if args.json:
        _print_json([_wire("RelationOut", r) for r in relations])
        return EXIT_OK
    for line in lines:
        print(line)
    if not lines:
        print(f"(no facts about {args.entity!r})")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        page = memory.list(args.user, offset=args.offset, limit=args.limit, session_id=args.session)
    if args.json:
        _print_json(_wire("PageOut", page))
        return EXIT_OK
    for episode in page.items:
        print(_episode_line(episode))
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "none"
    more = f"; next page: --offset {page.next_offset}" if page.next_offset is not None else ""
    print(f"episodes {shown} of {page.total}{more}", file=sys.stderr)
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        episode = memory.get(args.user, args.episode_id)
    if args.json:
        _print_json(_wire("EpisodeOut", episode))
        return EXIT_OK
    for name, value in episode.to_json().items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value
        print(f"{name + ':':<13}{shown}")
    return EXIT_OK


def cmd_users(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        users = sorted(memory.users())
    if args.json:
        _print_json({"users": users})
    elif users:
        print("\n".join(users))
    else:
        print(f"(no users in {args.data_dir})", file=sys.stderr)
    return EXIT_OK


def cmd_count(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        count = memory.count(args.user)
    if args.json:
        _print_json({"count": count})
    else:
        print(count)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    with _memory(args) as memory:
        if args.output:
            count = memory.export(args.user, args.output)
            print(f"exported {count} episodes of {args.user!r} to {args.output}", file=sys.stderr)
            if args.json:
                _print_json({"exported": count, "file": args.output})
        elif args.json:
            _print_json([json.loads(line) for line in memory.export(args.user).splitlines()])
        else:
            sys.stdout.write(memory.export(args.user))
    return EXIT_OK


# --- evaluation, services, keys ---------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from memagent.eval import harness

    out = args.out or f"memagent-eval-{args.benchmark}"
    try:
        ks = tuple(int(k) for k in args.k.split(",")) if args.k else None
    except ValueError:
        raise InvalidInputError(f"--k must be comma-separated integers, got {args.k!r}") from None
    if args.benchmark == "locomo":
        convs = args.conversations.split(",") if args.conversations else None
        summary = harness.run_locomo(args.file, out, limit=args.limit, conversations=convs,
                                     ks=ks or harness.LOCOMO_KS)
    else:
        summary = harness.run_longmemeval(args.file, out, limit=args.limit, ks=ks or harness.LONGMEMEVAL_KS)
    if args.json:
        _print_json({**summary, "out": out})
        return EXIT_OK
    print(summary["report"])
    print(f"records: {out}/records.jsonl | summary: {out}/summary.json | plot: {out}/plot.png")
    return EXIT_OK


def _schedule_settings(args: argparse.Namespace) -> Any:
    """The schedule of ``serve``, checked before the embedder loads."""
    from pydantic import ValidationError

    from memagent.config import Config, ScheduleSettings

    given = {"consolidate_every_s": args.consolidate_every, "forget_every_s": args.forget_every,
             "maintain_every_s": args.maintain_every, "job_store": args.job_store}
    try:
        return ScheduleSettings(**{**Config().schedule.model_dump(),
                                   **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as exc:
        raise ConfigError(f"serve: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from memagent.runtime import release_freed_memory

    release_freed_memory()  # a long-running process: RSS flat under load (memagent/runtime.py)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    settings = _schedule_settings(args)
    if args.http:
        return _serve_http(args, settings)
    notes = sys.stderr if args.json else sys.stdout
    with _memory(args, create=True) as memory:
        scheduler, failed = _run_schedule(memory, settings, args, notes)
    if args.json:
        _print_json({"failed": failed, "jobs": scheduler.stats()})
    else:
        print(f"memagent serve: done; {scheduler.summary()}", flush=True)
    return EXIT_ERROR if failed else EXIT_OK


def _run_schedule(memory: Any, settings: Any, args: argparse.Namespace, notes: Any) -> tuple[Any, int]:
    """Each job once (``--once``; the failures counted), or on the schedule until SIGINT or SIGTERM."""
    import signal
    import threading

    from memagent.scheduler import JOBS, MemoryScheduler

    scheduler, failed = MemoryScheduler(memory, settings), 0
    if args.once:
        for name in JOBS:
            try:
                scheduler.run_now(name)
            except Exception:  # logged with its traceback by the scheduler
                failed += 1
        return scheduler, failed
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        scheduler.start()
        print(f"memagent serve: {redacted(args.data_dir)}: consolidate every {settings.consolidate_every_s:g} s, "
              f"forget every {settings.forget_every_s:g} s, maintain every {settings.maintain_every_s:g} s; "
              "SIGINT or SIGTERM stops", file=notes, flush=True)
        while not stop.wait(0.5):
            pass
        print("memagent serve: stopping (waiting for a running job)", file=notes, flush=True)
    finally:
        scheduler.stop(wait=True)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return scheduler, failed


def _serve_http(args: argparse.Namespace, settings: Any) -> int:
    """``serve --http``: uvicorn workers, each with its own Memory on the data directory, the schedule beside."""
    try:
        import uvicorn

        from memagent.runtime import share_cores
        from memagent.server import app as server
        from memagent.server.keys import ENV_KEYS
    except ImportError as exc:
        raise ConfigError(f"serve --http needs the server extra (pip install 'memagent[server]'): {exc}") from None
    if args.once:
        raise InvalidInputError("--once runs the jobs without a server; leave out --http or --once")
    keys = server.load_keys(args.keys, os.environ.get(ENV_KEYS) or None)
    if keys is None and not server.is_loopback(args.host):
        raise InvalidInputError(f"refusing to serve {args.host} without API keys: anyone who reaches it would "
                                "reach every user. Give --keys FILE (memagent keys add TENANT --file FILE makes "
                                "one) or bind 127.0.0.1")
    if keys is not None and not len(keys):
        print("warning: the keys file holds no key: every request will be refused", file=sys.stderr)
    data_dir = args.data_dir if "://" in args.data_dir else os.path.abspath(args.data_dir)
    config = args.config or os.environ.get(ENV_CONFIG) or ""
    if config:
        config_of(args)  # a bad file fails here, before the workers start
        config = os.path.abspath(config) if os.path.exists(config) else config
    if args.workers > 1:
        share_cores(args.workers)  # torch's threads: each worker its share of the cores
    os.environ.update({server.ENV_DATA_DIR: data_dir, server.ENV_HOST: args.host, server.ENV_CONFIG: config,
                       server.ENV_LLM: llm_of(args) or "",
                       server.ENV_KEYS_FILE: os.path.abspath(args.keys) if args.keys else "",
                       server.ENV_SCHEDULE: "0" if args.no_schedule else settings.model_dump_json()})
    print(f"memagent serve --http: {redacted(data_dir)} on http://{args.host}:{args.port} ({args.workers} worker"
          f"{'s' if args.workers > 1 else ''}; docs at /docs); SIGINT or SIGTERM stops",
          file=sys.stderr if args.json else sys.stdout, flush=True)
    uvicorn.run("memagent.server.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level="info", access_log=args.access_log, timeout_graceful_shutdown=30,
                # a worker loads the embedder at start and may be busy for seconds: uvicorn's 5 s default
                # health check would kill and restart it (dropping its connections)
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_S)
    return EXIT_OK


def cmd_keys_add(args: argparse.Namespace) -> int:
    from memagent.server.keys import add_key

    key = add_key(args.file, args.tenant)
    if args.json:
        _print_json({"tenant": args.tenant, "file": args.file, "key": key})
    else:
        print(key)
    print(f"added a key of tenant {args.tenant!r} to {args.file}; only its SHA-256 digest is stored, "
          "so this is the only time the key is shown", file=sys.stderr)
    return EXIT_OK


# --- the parser -------------------------------------------------------------------------
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memagent")
    except PackageNotFoundError:  # a source tree that was never installed
        from memagent import __version__

        return __version__


def _add_writing(sub: Any, common: argparse.ArgumentParser) -> None:
    add = sub.add_parser("add", parents=[common], help="store messages of a user")
    add.add_argument("user")
    add.add_argument("text", nargs="*", help="one or more message texts")
    add.add_argument("--file", help="JSON Lines of messages ({text, role, timestamp, id, metadata})")
    add.add_argument("--role", default="user")
    add.add_argument("--session", default=None)
    add.add_argument("--timestamp", default=None)
    add.add_argument("--id", default=None, help="your message id (re-adding it stores nothing new)")
    add.set_defaults(func=cmd_add)

    imp = sub.add_parser("import", parents=[common], help="load a JSON Lines export (rerun to resume)")
    imp.add_argument("file")
    imp.add_argument("--user", help="store every episode under this user instead")
    imp.add_argument("--batch-size", type=_positive, default=500, metavar="N", help="episodes per write (500)")
    imp.set_defaults(func=cmd_import)

    consolidate = sub.add_parser("consolidate", parents=[common],
                                 help="turn new episodes into profile statements and graph facts")
    consolidate.add_argument("user", nargs="?", help="one user (default: every user)")
    consolidate.set_defaults(func=cmd_consolidate)

    forget = sub.add_parser("forget", parents=[common], help="run the forgetting policy (a dry run unless --apply)")
    forget.add_argument("user")
    forget.add_argument("--apply", action="store_true", help="archive and restore (default: only say what)")
    forget.add_argument("--at", help="the time to decide at (default: now)")
    forget.set_defaults(func=cmd_forget)

    feedback = sub.add_parser("feedback", parents=[common], help="rate an answer by its trace id")
    feedback.add_argument("trace_id")
    feedback.add_argument("rating", help="good/bad (up/down, yes/no, correct/wrong) or a number in [-1, 1]")
    feedback.add_argument("--correction", metavar="TEXT", help="the right answer, stored as a pinned episode")
    feedback.add_argument("--user", help="the user the answer was given to (checked)")
    feedback.add_argument("--at", help="when the feedback is given (default: now)")
    feedback.set_defaults(func=cmd_feedback)

    delete = sub.add_parser("delete", parents=[common], help="delete one episode and what was drawn from it alone")
    delete.add_argument("user")
    delete.add_argument("episode_id")
    delete.set_defaults(func=cmd_delete)

    delete_user = sub.add_parser("delete-user", parents=[common], help="remove everything of a user")
    delete_user.add_argument("user")
    delete_user.add_argument("--yes", action="store_true")
    delete_user.set_defaults(func=cmd_delete_user)


def _add_reading(sub: Any, common: argparse.ArgumentParser) -> None:
    search = sub.add_parser("search", parents=[common], help="search a user's memory")
    search.add_argument("user")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--since")
    search.add_argument("--until")
    search.add_argument("--now", help="reference time for 'last May', 'two weeks ago'...")
    search.set_defaults(func=cmd_search)

    ask = sub.add_parser("ask", parents=[common], help="answer a question from a user's memory, with evidence")
    ask.add_argument("user")
    ask.add_argument("question")
    ask.add_argument("--at", help="when the question is asked (default: now)")
    ask.add_argument("--route", choices=[r.value for r in Route], help="force a route")
    ask.set_defaults(func=cmd_ask)

    profile = sub.add_parser("profile", parents=[common], help="a user's profile statements valid at a time")
    profile.add_argument("user")
    profile.add_argument("--at", help="default: now")
    profile.set_defaults(func=cmd_profile)

    facts = sub.add_parser("facts", parents=[common], help="knowledge-graph facts of an entity")
    facts.add_argument("user")
    facts.add_argument("entity", help='a name: "Ana", "my sister Ana"; the user\'s own id for the user')
    facts.add_argument("--at", help="default: the facts open now")
    facts.set_defaults(func=cmd_facts)

    listing = sub.add_parser("list", parents=[common], help="a page of a user's episodes, in the order written")
    listing.add_argument("user")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--session", help="only this session")
    listing.set_defaults(func=cmd_list)

    get = sub.add_parser("get", parents=[common], help="one episode by id")
    get.add_argument("user")
    get.add_argument("episode_id")
    get.set_defaults(func=cmd_get)

    sub.add_parser("users", parents=[common], help="every user with episodes").set_defaults(func=cmd_users)

    count = sub.add_parser("count", parents=[common], help="how many episodes a user has")
    count.add_argument("user")
    count.set_defaults(func=cmd_count)

    export = sub.add_parser("export", parents=[common], help="write a user's episodes as JSON Lines")
    export.add_argument("user")
    export.add_argument("-o", "--output")
    export.set_defaults(func=cmd_export)


def _add_services(sub: Any, common: argparse.ArgumentParser) -> None:
    evaluate = sub.add_parser("eval", parents=[common],
                              help="run LoCoMo or LongMemEval and report the official metrics")
    evaluate.add_argument("benchmark", choices=["locomo", "longmemeval"])
    evaluate.add_argument("file")
    evaluate.add_argument("--out", help="run directory (resumed if it exists); default memagent-eval-<benchmark>")
    evaluate.add_argument("--limit", type=_positive, help="only the first N questions (and what they are asked of)")
    evaluate.add_argument("--conversations", help="LoCoMo sample ids, comma-separated")
    evaluate.add_argument("--k", help="comma-separated k values for recall@k")
    evaluate.set_defaults(func=cmd_eval)

    serve = sub.add_parser("serve", parents=[common], help="run consolidation, forgetting and maintenance on a "
                                                           "schedule; with --http, the HTTP API too")
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
    keys_add = keys_sub.add_parser("add", parents=[common],
                                   help="make a key of a tenant: print it once, store only its digest")
    keys_add.add_argument("tenant", help="letters, digits, '_' or '-'")
    keys_add.add_argument("--file", required=True, help="the keys file (made if missing; *.json for JSON)")
    keys_add.set_defaults(func=cmd_keys_add)

    mcp_server.add_arguments(sub.add_parser("mcp", help="serve a memory to MCP clients (stdio or streamable HTTP)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memagent", description="Lifelong personal memory for LLM assistants.",
                                     epilog="exit status: 0 done, 1 runtime error, 2 usage error, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--data-dir", "--store", dest="data_dir", default=None,
                        help=f"data directory, LanceDB URI or postgresql:// URL "
                             f"(default ${ENV_DATA_DIR}, else ./{DEFAULT_DATA_DIR})")
    parser.add_argument("--config", default=None, help=f"settings: a preset name or a TOML file of the sections to "
                                                        f"change, e.g. [storage] postgres_pool_size = 4 "
                                                        f"(default ${ENV_CONFIG}, else the defaults)")
    parser.add_argument("--llm", default=None, help=f"a chat model to extract, route and answer with, checked "
                                                     f"against the LLM-free path: gguf:/path/model.gguf or "
                                                     f"provider:model (default ${ENV_LLM}, else none)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    # SUPPRESS: `memagent --json search ...` and `memagent search ... --json` both work
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document on stdout")
    common.add_argument("--data-dir", "--store", dest="data_dir", default=argparse.SUPPRESS,
                        help="as before the command: `memagent serve --store postgresql://...` works too")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", parents=[common],
                          help="ingest the shipped sample conversation and run a few searches")
    demo.add_argument("-k", type=int, default=3)
    demo.set_defaults(func=cmd_demo)
    _add_writing(sub, common)
    _add_reading(sub, common)
    _add_services(sub, common)
    return parser


def _exit_status(exc: MemagentError) -> int:
    """2 for what the arguments or input files got wrong, 1 for what went wrong while running."""
    usage = isinstance(exc, (InvalidInputError, ConfigError)) and not isinstance(exc, EmbedderMismatchError)
    return EXIT_USAGE if usage else EXIT_ERROR


def _fail(message: object, status: int) -> int:
    print(f"memagent: {' '.join(str(message).split())}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (see the module docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None else EXIT_USAGE
    env = os.environ.get(ENV_DATA_DIR) or None
    args.data_dir_given = args.data_dir is not None
    args.data_dir_from = "--data-dir" if args.data_dir_given else f"${ENV_DATA_DIR}" if env else "the default"
    args.data_dir = args.data_dir or env or DEFAULT_DATA_DIR
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except MemagentError as exc:
        return _fail(f"error: {exc}", _exit_status(exc))
    except UnicodeError as exc:  # an input file that is not UTF-8, a path no file system can name
        return _fail(f"error: {exc}", EXIT_USAGE)
    except ValueError as exc:
        if "null byte" not in str(exc):  # only a NUL in a path: anything else is a bug to see
            raise
        return _fail(f"error: a path holds a NUL character: {exc}", EXIT_USAGE)
    except OSError as exc:
        return _fail(f"error: {exc}", EXIT_ERROR)


if __name__ == "__main__":
    sys.exit(main())
