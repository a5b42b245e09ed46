"""The profile tier: time-valid statements about a user, and session summaries.

A ``UserProfile`` is one user's statements with their vectors, loaded from the
``statements`` table. ``absorb`` folds freshly extracted candidates in, as
the consolidation policy decides: near duplicates are merged (evidence united,
confidence raised), a contradicted statement is closed (``valid_to``) and a
new one opened, nothing is overwritten. It returns the statements that
changed, for the caller to write. Statement ids derive from the user, the
episode and the text, so re-absorbing the same candidate after a crash finds
the statement it already wrote, and changes nothing.

Nothing here depends on the order of the rows: a profile loaded from storage is
sorted (by ``valid_from``, then id), the policy breaks ties by id, and a
summary lists its statements in the order of the session's turns. A batch
absorbed in one go and one absorbed again after a crash, on a profile
reloaded in another row order, give the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np
import pyarrow as pa

from memagent.policies import consolidation as policy
from memagent.records import Kind
from memagent.store.schema import from_table, vectors_of
from memagent.types import Candidate, Category, Statement

_NAMESPACE = uuid.UUID("0b6f43a2-6a8d-4f7e-9a1e-52c9d8f0e7b4")


def statement_id(user_id: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{user_id}\x00{key}"))


class UserProfile:
    """One user's statements and summaries, with vectors, in memory."""

    def __init__(self, user_id: str, statements: Sequence[Statement], vectors: np.ndarray) -> None:
        self.user_id = user_id
        self.statements: list[Statement] = list(statements)
        self.vectors = vectors.reshape(len(self.statements), -1) if len(self.statements) else vectors
        self.row_of = {s.id: n for n, s in enumerate(self.statements)}

    @classmethod
    def from_arrow(cls, user_id: str, table: pa.Table, dimension: int) -> UserProfile:
        """A user's profile from its stored rows, in a canonical order (not the table's)."""
        statements, vectors = from_table(Kind.STATEMENT, table), vectors_of(table, dimension)
        order = sorted(range(len(statements)), key=lambda n: (statements[n].valid_from, statements[n].id))
        return cls(user_id, [statements[n] for n in order], vectors[order] if len(order) else vectors)

    def records(self, ids: Sequence[str]) -> tuple[list[Statement], np.ndarray]:
        """The statements with these ids and their vectors, ready to write."""
        rows = [self.row_of[i] for i in ids if i in self.row_of]
        return [self.statements[n] for n in rows], self.vectors[rows]

    def __len__(self) -> int:
        return len(self.statements)

    def get(self, statement_id: str) -> Statement | None:
        n = self.row_of.get(statement_id)
        return None if n is None else self.statements[n]

    def _put(self, statement: Statement, vector: np.ndarray) -> None:
        n = self.row_of.get(statement.id)
        if n is None:
            self.row_of[statement.id] = len(self.statements)
            self.statements.append(statement)
            self.vectors = np.vstack([self.vectors.reshape(-1, vector.shape[0]), vector[None, :]])
        else:
            self.statements[n] = statement

    def vector(self, statement_id: str) -> np.ndarray:
        return self.vectors[self.row_of[statement_id]]

    def active(self, at: datetime | None = None) -> list[int]:
        """Rows of the statements valid at ``at`` (default: currently open ones)."""
        if at is None:
            return [n for n, s in enumerate(self.statements) if s.valid_to is None]
        return [n for n, s in enumerate(self.statements) if s.valid_at(at)]

    # --- consolidation -----------------------------------------------------------
    def absorb(self, candidates: Sequence[Candidate], vectors: np.ndarray,
               merge_similarity: float) -> dict[str, str]:
        """Fold candidates in; return ``{statement id: what happened}`` for those that changed.

        A candidate absorbed before (a batch replayed after a crash) names its statement
        as ``"known"``, so that the caller writes what the batch touched either way.
        """
        changed: dict[str, str] = {}
        for candidate, vector in zip(candidates, vectors):
            decision = policy.decide(candidate, vector, self.statements, self.vectors,
                                     merge_similarity=merge_similarity)
            if decision.kind == policy.KNOWN:
                changed.setdefault(self._decided(decision.target).id, "known")
                continue
            if decision.kind == policy.MERGE:
                old = self._decided(decision.target)
                self._put(replace(old, evidence_ids=old.evidence_ids + (candidate.episode_id,),
                                  confidence=policy.raise_confidence(old.confidence, candidate.confidence)),
                          self.vector(old.id))
                if changed.get(old.id, "known") == "known":
                    changed[old.id] = "merged"
                continue
            if decision.kind == policy.SUPERSEDE:
                for closed in decision.closes:
                    old = self._decided(closed)
                    self._put(replace(old, valid_to=candidate.event_time), self.vector(old.id))
                    changed[old.id] = "closed"
            new = self._from_candidate(candidate)
            if new.id not in self.row_of:
                self._put(new, vector)
                changed[new.id] = "added"
        return changed

    def _decided(self, target: str | None) -> Statement:
        """The statement a decision names (the policy picks it from this tier's statements)."""
        old = None if target is None else self.get(target)
        assert old is not None, f"consolidation decided on a statement this tier lacks: {target!r}"
        return old

    def _from_candidate(self, c: Candidate) -> Statement:
        key = f"{c.episode_id}\x00{c.text}"
        first = self.get(statement_id(self.user_id, key))
        if first is not None and first.slot != c.slot:  # one sentence, another slot: its own statement
            key = f"{key}\x00{c.slot}"
        return Statement(id=statement_id(self.user_id, key), user_id=self.user_id,
                         subject=c.subject, text=c.text, category=c.category, confidence=c.confidence,
                         evidence_ids=(c.episode_id,), valid_from=c.event_time, session_id=c.session_id,
                         slot=c.slot, value=c.value)

    def summarise(self, session_id: str, episode_ids: Sequence[str], when: datetime,
                  sentences: int) -> tuple[Statement, np.ndarray] | None:
        """An extractive summary of a session from its statements, stored in this tier.

        ``episode_ids`` are the session's episodes in turn order; the statements are
        ranked and listed in that order (then by text and id), never in row order.
        """
        turn = {episode_id: n for n, episode_id in enumerate(episode_ids)}
        rows = sorted((n for n in self.active() if self.statements[n].session_id == session_id
                       and self.statements[n].category is not Category.SUMMARY),
                      key=lambda n: self._reading_order(self.statements[n], turn))
        if not rows:
            return None
        order = policy.summary_order(self.vectors[rows], [self.statements[n].confidence for n in rows])
        chosen = [rows[i] for i in sorted(order[:sentences])]
        text = " ".join(self.statements[n].text.rstrip(".") + "." for n in chosen)
        summary = Statement(id=statement_id(self.user_id, f"summary\x00{session_id}"), user_id=self.user_id,
                            subject="", text=f"Session of {when:%-d %B %Y}: {text}", category=Category.SUMMARY,
                            confidence=1.0, evidence_ids=tuple(episode_ids), valid_from=when,
                            session_id=session_id)
        vector = self.vectors[chosen].mean(axis=0)
        vector = vector / (float(np.linalg.norm(vector)) or 1.0)
        self._put(summary, vector.astype(np.float32))
        return summary, vector

    @staticmethod
    def _reading_order(statement: Statement, turn: dict[str, int]) -> tuple[int, str, str]:
        first = min((turn[i] for i in statement.evidence_ids if i in turn), default=len(turn))
        return first, statement.text, statement.id

    def remove_evidence(self, episode_ids: set[str]) -> tuple[list[str], list[str]]:
        """Drop deleted episodes from evidence; return (changed ids, ids left without evidence)."""
        changed: list[str] = []
        emptied: list[str] = []
        for n, s in enumerate(self.statements):
            if episode_ids & set(s.evidence_ids):
                kept = tuple(i for i in s.evidence_ids if i not in episode_ids)
                self.statements[n] = replace(s, evidence_ids=kept)
                (changed if kept else emptied).append(s.id)
        return changed, emptied
