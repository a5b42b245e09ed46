"""The arrows of the design hold: graphs never import the facade, policies import only types,
graph builders take typed dependencies, and policies declare no ``Any`` settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = sorted((ROOT / "graphs").glob("*.py"))
POLICIES = sorted((ROOT / "policies").glob("*.py"))


def module_imports(path: Path) -> set[str]:
    """Modules imported at module level (imports inside functions are the app factory's business)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.name)
def test_no_graph_imports_the_facade(path):
    assert "memagent.memory" not in module_imports(path)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_policies_import_only_types_and_other_policies(path):
    ours = {m for m in module_imports(path) if m.startswith("memagent")}
    assert ours <= {"memagent.types", "memagent.policies"} | {m for m in ours if m.startswith("memagent.policies.")}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_no_policy_takes_untyped_settings(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    untyped = [f"{fn.name}({a.arg})" for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
               for a in fn.args.args + fn.args.kwonlyargs
               if a.annotation is not None and ast.unparse(a.annotation) == "Any"]
    assert untyped == []


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.name)
def test_graph_builders_take_typed_dependencies(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("build_")):
        for arg in fn.args.args:
            assert arg.annotation is not None and ast.unparse(arg.annotation) != "Any", f"{fn.name}({arg.arg})"
