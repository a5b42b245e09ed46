"""The command line every LoCoMo benchmark shares: FILE, --json OUT, --limit N."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def locomo_main(doc: str, run: Callable[[str, int | None], dict[str, Any]],
                print_report: Callable[[dict[str, Any]], None], argv: list[str] | None = None) -> None:
    """Parse the arguments, run the benchmark, print its report, write its figures if asked."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("file", help="a LoCoMo-format JSON file")
    parser.add_argument("--json", dest="json_out", help="write the figures to this file")
    parser.add_argument("--limit", type=int, help="only the first N conversations")
    args = parser.parse_args(argv)
    result = run(args.file, args.limit)
    print_report(result)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, default=str)
