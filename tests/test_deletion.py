"""After ``delete_user`` nothing on disk or in a cache names or reveals the user: no row, no
old table version, no file, no lock file, no change-token file; other users keep all theirs;
and the per-user lock stays exclusive when its file is removed under a waiter."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from memagent import Memory, scope
from memagent.locks import UserLocks, lock_name

SECRET = "quixotic zeppelin marmalade"


def _bytes_of(root: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in root.rglob("*") if path.is_file()]


def _traces(root: Path, user: str) -> list[str]:
    """Every file under ``root`` whose name or content reveals ``user`` or the secret text."""
    needles = [user.encode(), SECRET.encode(), SECRET.split()[1].encode(),
               hashlib.sha1(user.encode()).hexdigest().encode()]
    found = []
    for path, data in _bytes_of(root):
        name = str(path.relative_to(root)).encode()
        found += [f"{path.relative_to(root)}: {needle!r}" for needle in needles if needle in name or needle in data]
    return found


def test_delete_user_leaves_no_file_naming_or_revealing_the_user(tmp_path, embedder):
    user = "carol-7f3a91"
    with Memory(str(tmp_path), embedder=embedder) as memory:
        memory.add("alice", ["I walk my beagle every morning.", "My sister lives in Lisbon."])
        memory.add(user, [f"My password hint is {SECRET}.", "I moved to Porto in 2021."], session_id="s1")
        memory.add(user, ["Book aisle seats"], agent_id="travel")
        memory.consolidate(user)
        answer = memory.ask(user, "What is my password hint?")
        memory.feedback(answer.trace_id, 1, user_id=user) if answer.trace_id else None
        memory.update(user, memory.list(user).items[1].id, text="I moved to Braga in 2022.")
        memory.search(user, SECRET, k=3)
        assert _traces(tmp_path, user)  # the probe sees the user while it is stored
        assert memory.delete_user(user) == 3  # the user's own episodes and its agent scope's
        memory.optimize()
        assert memory.users() == ["alice"]
        assert not _traces(tmp_path, user)
        assert not (tmp_path / ".locks" / lock_name(user)).exists()
        assert not (tmp_path / ".locks" / lock_name(scope(user, agent_id="travel"))).exists()
        assert memory.count("alice") == 2 and memory.search("alice", "beagle", k=1)
    with Memory(str(tmp_path), embedder=embedder) as again:  # and nothing comes back on reopening
        assert again.users() == ["alice"]
        assert not any(SECRET in h.episode.text for h in again.search("alice", SECRET, k=5))


_CHILD = """
import sys, time
from pathlib import Path
from memagent.locks import UserLocks
locks = UserLocks(sys.argv[1])
print("waiting", flush=True)
with locks.hold("dan"):
    marker = Path(sys.argv[1]) / "child-inside"
    marker.write_text("x")
    time.sleep(1.0)
    marker.unlink()
print("done", flush=True)
"""


def test_a_waiter_on_a_discarded_lock_file_takes_a_fresh_one_and_stays_exclusive(tmp_path):
    locks = UserLocks(tmp_path)
    assert locks.acquire("dan")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "waiting"
        time.sleep(0.5)  # the child has opened the lock file and waits on it
        locks.discard("dan")
        assert not (tmp_path / ".locks" / lock_name("dan")).exists()
        locks.release("dan")
        time.sleep(0.2)  # the child wakes on the removed file
        with locks.hold("dan"):  # a fresh file: the child must wait for it, not run beside us
            seen_inside = (tmp_path / "child-inside").exists()
            time.sleep(0.3)
            seen_inside = seen_inside or (tmp_path / "child-inside").exists()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
    assert not seen_inside


def test_the_lock_table_holds_only_users_being_locked(tmp_path):
    from memagent import locks as module

    before = len(module._slots)
    locks = UserLocks(tmp_path)
    for n in range(200):
        with locks.hold(f"user-{n}"):
            pass
    assert len(module._slots) == before
