"""Change tokens: how a process learns, cheaply, that another process wrote a user's rows.

Every in-process copy (a user's episode index, profile, graph, usage) remembers
the token of its user and record kind at the time it was read; before it is
used again the token is read anew, and a different token means "reload". A
token is a random value rewritten after each commit of that user and kind,
so comparing two is exact (no clock, no counter to wrap or to repeat after a
delete) and reading one is a small file read, microseconds, where a reload
from the engine takes milliseconds.

``VersionFiles`` keeps them on the data directory shared by the processes:
``<data_dir>/.versions/<sha1(user_id)>/<kind>``, each replaced atomically, so a
reader sees the old token or the new one, never a torn one; a writer needs no
lock (a token is written, not read-modified-written). Deleting a user removes
the user's folder and replaces one global ``epoch`` token, which is part of
every token read, so a process that cached the user, or holds table versions
from before the delete, reloads. Folder names are digests: nothing in the
tree names a user.

``LocalVersions`` is the same contract for data only one process can see (the
in-memory backend, remote URIs without a shared file system).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
from pathlib import Path

from memagent.records import Kind

EPOCH = "epoch"


def _digest(user_id: str) -> str:
    return hashlib.sha1(user_id.encode("utf-8", "surrogatepass")).hexdigest()


class LocalVersions:
    """Tokens of one process: a counter per user and kind, and a delete epoch."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, Kind], int] = {}
        self._epoch = 0
        self._lock = threading.Lock()

    def token(self, user_id: str, kind: Kind) -> str:
        return f"{self._epoch}/{self._tokens.get((user_id, kind), 0)}"

    def bump(self, user_id: str, kind: Kind) -> str:
        with self._lock:
            self._tokens[(user_id, kind)] = self._tokens.get((user_id, kind), 0) + 1
            return self.token(user_id, kind)

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            for key in [k for k in self._tokens if k[0] == user_id]:
                del self._tokens[key]
            self._epoch += 1


class VersionFiles:
    """Tokens in files under ``<root>/.versions``, shared by every process on that directory."""

    def __init__(self, root: str | Path) -> None:
        self.directory = Path(root) / ".versions"

    def _read(self, path: Path) -> str:
        try:
            return path.read_text("ascii")
        except (FileNotFoundError, NotADirectoryError):
            return ""
        except (OSError, UnicodeDecodeError):  # unreadable counts as changed: the caller reloads
            return secrets.token_hex(8)

    def _write(self, path: Path) -> str:
        value = secrets.token_hex(8)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.write_text(value, "ascii")
        os.replace(temporary, path)
        return value

    def token(self, user_id: str, kind: Kind) -> str:
        """The current token of a user's rows of one kind ("epoch/value"; empty value if never written)."""
        return f"{self._read(self.directory / EPOCH)}/{self._read(self.directory / _digest(user_id) / kind.value)}"

    def bump(self, user_id: str, kind: Kind) -> str:
        """Mark a user's rows of one kind changed; return the new token."""
        value = self._write(self.directory / _digest(user_id) / kind.value)
        return f"{self._read(self.directory / EPOCH)}/{value}"

    def drop_user(self, user_id: str) -> None:
        """Forget a user's tokens (after the user was deleted) and move the delete epoch on."""
        shutil.rmtree(self.directory / _digest(user_id), ignore_errors=True)
        self._write(self.directory / EPOCH)
