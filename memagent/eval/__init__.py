"""Benchmark datasets (LoCoMo, LongMemEval), their official metrics, and the harness that runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memagent.errors import InvalidInputError


def read_json_list(path: str | Path, benchmark: str, what: str) -> list[Any]:
    """The top-level JSON list of a benchmark file, or a clear ``InvalidInputError``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read {benchmark} file {path}: {exc}") from None
    if not isinstance(data, list):
        raise InvalidInputError(f"{path}: expected a list of {what}")
    return data
