"""The wheel installs one top-level name, with graphs/ and policies/ inside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy of the files git knows about: a stale build/ or egg-info in the
    # checkout would otherwise slip modules into the wheel that the config leaves out.
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
                   check=True, capture_output=True, cwd=tmp_path_factory.mktemp("cwd"))
    return next(out.glob("memagent-*.whl"))


def test_wheel_has_one_top_level_package_with_graphs_and_policies(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"memagent"}
    assert "memagent/graphs/ingest.py" in names and "memagent/graphs/search.py" in names
    assert "memagent/policies/retrieval.py" in names
    assert "memagent/examples/sample_conversation.json" in names
    assert not any(n.startswith(("graphs/", "policies/", "tests/", "benchmarks/")) for n in names)


def test_wheel_declares_console_script(wheel):
    with zipfile.ZipFile(wheel) as zf:
        entry = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        assert "memagent = memagent.cli:main" in zf.read(entry).decode()


def test_wheel_holds_every_module_of_the_source_tree(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = [p.relative_to(ROOT).as_posix() for p in (ROOT / "memagent").rglob("*.py")]
    sources += ["memagent/graphs/" + p.name for p in (ROOT / "graphs").glob("*.py")]
    sources += ["memagent/policies/" + p.name for p in (ROOT / "policies").glob("*.py")]
    sources += ["memagent/policies/" + p.name for p in (ROOT / "policies").glob("*.toml")]
    missing = sorted(s for s in sources if s not in names)
    assert not missing, f"not in the wheel: {missing}"
