"""Episode history: the versions ``Memory.update`` keeps, one ``EpisodeVersion`` record each.

An episode never updated has no rows: its history is the episode itself
(version 1, ``add``). The first update writes version 1 and version 2
together, later ones one row each, always before the episode itself is
rewritten. So a crash between the two leaves a last version that differs from
the stored episode: it is left out of the history, and the retried update
writes its number again (rows are replaced by id), so nothing is duplicated.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from memagent.records import Kind
from memagent.store.base import Backend
from memagent.store.schema import from_table
from memagent.types import Episode, EpisodeVersion


def _version(episode: Episode, number: int, event: str, at: datetime) -> EpisodeVersion:
    return EpisodeVersion(id=f"{episode.id}\x00{number}", user_id=episode.user_id, episode_id=episode.id,
                          version=number, event=event, text=episode.text, at=at, metadata=dict(episode.metadata))


def _same(version: EpisodeVersion, episode: Episode) -> bool:
    return version.text == episode.text and version.metadata == episode.metadata


class Revisions:
    """The stored versions of one backend's episodes, scoped by user."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def _stored(self, user_id: str, episode_ids: set[str]) -> list[EpisodeVersion]:
        rows: list[EpisodeVersion] = from_table(Kind.HISTORY, self.backend.scan(Kind.HISTORY, user_id))
        return sorted((r for r in rows if r.episode_id in episode_ids), key=lambda r: (r.episode_id, r.version))

    def versions(self, current: Episode) -> list[EpisodeVersion]:
        """The versions of an episode, oldest first, the last being the episode as stored now."""
        stored = self._stored(current.user_id, {current.id})
        while stored and not _same(stored[-1], current):  # an update that never reached the episode
            stored.pop()
        return stored or [_version(current, 1, "add", current.ingest_time)]

    def record(self, current: Episode, changed: Episode, at: datetime) -> None:
        """Store the version ``changed`` will be, after the ones ``current`` has."""
        versions = self.versions(current)
        stored = {r.id for r in self._stored(current.user_id, {current.id})}
        rows = [v for v in versions if v.id not in stored]
        rows.append(_version(changed, versions[-1].version + 1, "update", at))
        self.backend.put(Kind.HISTORY, rows)

    def ids_of(self, user_id: str, episode_ids: Iterable[str]) -> list[str]:
        """The ids of the stored versions of these episodes."""
        return [r.id for r in self._stored(user_id, set(episode_ids))]
