"""memagent's exceptions: one root, each subclass also a fitting builtin.

    MemagentError(Exception)
    ├── InvalidInputError(ValueError)      bad text, ids, arguments
    │   ├── TimestampError                 a timestamp that cannot be parsed
    │   └── ImportFormatError              a malformed export/import file
    ├── NotFoundError(LookupError)
    │   ├── UnknownUserError               the user has no memory at all
    │   ├── EpisodeNotFoundError           no such episode for that user
    │   └── TraceNotFoundError             no answer with that trace id (for that user)
    ├── ConfigError(ValueError)
    │   └── EmbedderMismatchError          store built with another embedding size
    ├── UnsupportedError(NotImplementedError)  a capability this backend lacks
    ├── LockTimeout(TimeoutError)          a user's lock stayed held past the timeout
    ├── JobError(RuntimeError)             a scheduled job failed for some users
    └── StorageError(RuntimeError)         the storage engine failed

Catching ``MemagentError`` catches everything memagent raises on purpose;
catching ``ValueError`` or ``LookupError`` keeps working as usual.
"""

from __future__ import annotations


class MemagentError(Exception):
    """Root of every error memagent raises on purpose."""


class InvalidInputError(MemagentError, ValueError):
    """An argument or a message that memagent refuses before touching storage."""


class TimestampError(InvalidInputError):
    """A timestamp that cannot be read as a point in time."""

    def __init__(self, value: object, reason: str = "") -> None:
        self.value = value
        detail = f": {reason}" if reason else ""
        super().__init__(f"cannot parse timestamp {value!r}{detail}")


class ImportFormatError(InvalidInputError):
    """An import file that is not a memagent export; nothing was written."""

    def __init__(self, path: object, line: int, reason: str) -> None:
        self.path, self.line = path, line
        super().__init__(f"{path}, line {line}: {reason} (nothing was imported)")


class NotFoundError(MemagentError, LookupError):
    """Something that was asked for by id does not exist."""


class UnknownUserError(NotFoundError):
    """The user has no stored memory."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"unknown user {user_id!r}: no memory is stored for this user")


class EpisodeNotFoundError(NotFoundError):
    """The episode does not exist for that user."""

    def __init__(self, user_id: str, episode_id: str) -> None:
        self.user_id, self.episode_id = user_id, episode_id
        super().__init__(f"no episode {episode_id!r} for user {user_id!r}")


class TraceNotFoundError(NotFoundError):
    """No answer with that trace id (or none of that user)."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        super().__init__(f"no answer with trace id {trace_id!r}")


class ConfigError(MemagentError, ValueError):
    """A setting that cannot work."""


class EmbedderMismatchError(ConfigError):
    """The store was built with embeddings of another dimension."""

    def __init__(self, stored: int, given: int, stored_name: str = "") -> None:
        self.stored, self.given = stored, given
        name = f" ({stored_name})" if stored_name else ""
        super().__init__(
            f"this data directory holds {stored}-dimensional embeddings{name}, "
            f"but the configured embedder gives {given} dimensions; use the original "
            "embedder or a new data directory (export, then import to re-embed)"
        )


class StorageError(MemagentError, RuntimeError):
    """The storage engine failed; committed data is untouched."""


class UnsupportedError(MemagentError, NotImplementedError):
    """The backend in use does not have this capability (see ``Backend.capabilities``)."""


class LockTimeout(MemagentError, TimeoutError):
    """A user's lock stayed held by another process or thread past the timeout."""

    def __init__(self, user_id: str, timeout: float) -> None:
        self.user_id, self.timeout = user_id, timeout
        super().__init__(f"user {user_id!r} is locked by another process or thread; gave up after {timeout:g} s")


class JobError(MemagentError, RuntimeError):
    """A scheduled job failed for some users; the other users were done."""
