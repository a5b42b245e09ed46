"""The docstring examples of memagent, memagent.graphs and memagent.policies, run as tests.

pytest's ``--doctest-modules`` names a module after its folder, so graphs/x.py
would run as a second module ``graphs.x`` beside the installed
``memagent.graphs.x``. Here every module is imported by its installed name and
its examples are found with ``doctest`` itself. Examples that need the real
embedder or a data directory carry ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from collections.abc import Iterator

import pytest

PACKAGES = ("memagent", "memagent.graphs", "memagent.policies")
OPTIONS = doctest.ELLIPSIS  # what pytest's doctest runner uses by default


def _module_names() -> Iterator[str]:
    for name in PACKAGES:
        yield name
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not info.name.endswith("__main__"):
                yield info.name


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    found = {t.name: t for n in dict.fromkeys(_module_names()) for t in finder.find(importlib.import_module(n))
             if t.examples}
    return [found[name] for name in sorted(found)]


def test_doctests_are_found() -> None:
    assert any(t.name.startswith("memagent.graphs.") for t in _doctests())
    assert any(t.name.startswith("memagent.policies.") for t in _doctests())


@pytest.mark.parametrize("test", _doctests(), ids=lambda t: t.name)
def test_docstring_examples(test: doctest.DocTest) -> None:
    if all(example.options.get(doctest.SKIP) for example in test.examples):
        pytest.skip("its examples need the real embedder or a data directory")
    report: list[str] = []
    result = doctest.DocTestRunner(optionflags=OPTIONS).run(test, out=report.append)
    if result.failed:
        pytest.fail("".join(report), pytrace=False)
