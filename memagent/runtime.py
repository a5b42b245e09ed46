"""Process-wide settings for long-running memagent processes (``memagent serve``, ``memagent mcp``).

``release_freed_memory`` makes glibc's allocator give freed memory back to the
system: at most two arenas, and a fixed threshold above which allocations are
mapped (and unmapped when freed) instead of kept in a heap. Without it, the many
threads of a busy process (request threads, torch, LanceDB's runtime) fragment one
arena each, and the resident size creeps up under load though nothing leaks
(``benchmarks/rss_load.py`` with the default caches, keeping what it adds: +55 MB a
minute over the last two thirds of 5 minutes without this, +14 MB a minute with it,
most of that the caches filling). Child processes get the same through the environment.
It is never called on import: a library must not change its host's allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
SETTINGS = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def release_freed_memory() -> bool:
    """Tune glibc's allocator for this process and its children; ``False`` where there is no glibc."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)  # read by child processes at their start
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    try:
        mallopt = ctypes.CDLL(library).mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False
    try:
        arenas, threshold, trim = (int(os.environ[k]) for k in SETTINGS)
    except ValueError:  # the operator set one to something else: leave the allocator alone
        return False
    return all(mallopt(option, value) == 1 for option, value in
               ((_M_ARENA_MAX, arenas), (_M_MMAP_THRESHOLD, threshold), (_M_TRIM_THRESHOLD, trim)))


THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def share_cores(workers: int) -> int:
    """Give each of ``workers`` server processes its share of the cores for torch's math
    threads (through the environment, which the workers inherit), unless the operator set
    them; the threads each worker gets.

    Without it each worker starts one thread per core: four workers on two cores run
    eight threads that wait on each other in every batch of sentence embeddings
    (``benchmarks/service_load.py``).
    """
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    for name in THREAD_SETTINGS:
        os.environ.setdefault(name, str(threads))
    try:
        return int(os.environ[THREAD_SETTINGS[0]])
    except ValueError:
        return threads
