"""Process-wide settings of long-running processes (memagent/runtime.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from memagent.runtime import THREAD_SETTINGS, share_cores


def test_share_cores_gives_each_worker_its_share_and_the_workers_torch_uses_it(monkeypatch):
    for name in THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert share_cores(4) == 2 and all(os.environ[n] == "2" for n in THREAD_SETTINGS)
    child = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                           capture_output=True, text=True, check=True, env=dict(os.environ))
    assert child.stdout.strip() == "2"  # what a uvicorn worker, started with this environment, runs


def test_share_cores_keeps_the_operators_setting_and_never_goes_below_one(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert share_cores(4) == 3 and os.environ["MKL_NUM_THREADS"] == "1"
