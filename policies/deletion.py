"""What deleting episodes does to the derived tiers. Pure: items in, a plan out.

A derived item (statement, entity, relation) keeps the evidence that is left;
one left with no evidence at all goes too, and so do the usage records and
ratings of everything that goes: nothing of a deleted episode stays behind.

>>> from datetime import datetime, timezone
>>> from memagent.types import Entity
>>> e = Entity("e1", "u", "Ana", "person", (), ("ep1", "ep2"))
>>> plan = plan_removal({"ep1"}, [], [e], [])
>>> plan.entities[0].evidence_ids, plan.gone
(('ep2',), {'ep1'})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from memagent.types import Entity, Relation, Statement

T = TypeVar("T", Statement, Entity, Relation)


@dataclass(frozen=True)
class RemovalPlan:
    """Derived items to rewrite (with fewer evidence ids) and ids to delete, per kind."""

    statements: list[Statement] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    drop_statements: list[str] = field(default_factory=list)
    drop_entities: list[str] = field(default_factory=list)
    drop_relations: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)  # every id that no longer exists: usage and ratings go too


def _split(episode_ids: set[str], items: Sequence[T]) -> tuple[list[T], list[str]]:
    kept, dropped = [], []
    for item in items:
        if not episode_ids & set(item.evidence_ids):
            continue
        left = tuple(i for i in item.evidence_ids if i not in episode_ids)
        if left:
            kept.append(replace(item, evidence_ids=left))
        else:
            dropped.append(item.id)
    return kept, dropped


def plan_removal(episode_ids: set[str], statements: Sequence[Statement], entities: Sequence[Entity],
                 relations: Sequence[Relation]) -> RemovalPlan:
    """The plan for deleting ``episode_ids`` from a user's memory."""
    kept_s, drop_s = _split(episode_ids, statements)
    kept_e, drop_e = _split(episode_ids, entities)
    kept_r, drop_r = _split(episode_ids, relations)
    return RemovalPlan(kept_s, kept_e, kept_r, drop_s, drop_e, drop_r, {*episode_ids, *drop_s, *drop_e, *drop_r})
