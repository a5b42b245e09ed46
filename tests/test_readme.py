"""The README's Python snippets run as pasted (in a temp directory, with the real embedder).

A block without imports continues the README's first one: it runs after it, with
``memory`` open on the data directory that one wrote. A block that needs what a
test cannot have (a running server, a provider's chat model) is listed in
``NEEDS`` with the reason; every other block must run.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
NEEDS = {  # a phrase of the block -> why it cannot run here
    "Client(": "talks to a running memagent server (tests/test_api_contract.py runs the client)",
}


def _skipped(block: str) -> str | None:
    return next((why for phrase, why in NEEDS.items() if phrase in block), None)


def test_the_readme_has_python_snippets():
    assert len(BLOCKS) >= 6
    assert sum(_skipped(b) is None for b in BLOCKS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{n}" for n in range(len(BLOCKS))])
def test_a_readme_snippet_runs_as_pasted(block, tmp_path, monkeypatch, embedder):
    why = _skipped(block)
    if why:
        pytest.skip(why)
    monkeypatch.chdir(tmp_path)  # snippets that write ./memagent-data write here
    printed = io.StringIO()
    continues = "import " not in block
    with contextlib.redirect_stdout(printed):
        if continues:
            exec(compile(BLOCKS[0], str(README), "exec"), {"__name__": "__readme__"})
        scope: dict = {"__name__": "__readme__"}
        if continues:
            from memagent import Memory

            scope["memory"] = Memory("./memagent-data")
        try:
            exec(compile(block, str(README), "exec"), scope)
        finally:
            if continues:
                scope["memory"].close()
    if "print(" in block:
        assert printed.getvalue().strip()
