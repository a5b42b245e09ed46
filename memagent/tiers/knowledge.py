"""The knowledge-graph tier: a user's entities and typed, time-valid relations.

Entities are resolved as they come: surface forms are reduced to a key (case,
possessives, determiners, plurals: "my sister Ana", "Ana" and "Ana's" are one
key), then a key not seen before joins an existing entity of a compatible type
when their name embeddings are close enough. Relations carry their evidence
episodes and validity; a functional relation (``lives_in``, ``works_at``) with
a new object closes the old edge. The graph of one user is a networkx
``MultiDiGraph`` whose node ids are that user's entity ids only: nothing links
two users.

Row order never decides anything: a graph loaded from storage holds its
entities and relations sorted by id, a tie between equally similar entities
goes to the smaller id, and a triple already absorbed from an episode (a batch
replayed after a crash) closes nothing again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

import networkx as nx
import numpy as np
import pyarrow as pa

from memagent.records import Kind
from memagent.store.schema import from_table, stack_vectors, vectors_of
from memagent.types import Entity, Relation, Triple

_NAMESPACE = uuid.UUID("3d0f7c4e-2b1a-4e8f-8c55-6a9e1f2d4b70")
_DETERMINERS = re.compile(r"^(?:my|our|his|her|their|your|the|a|an)\s+", re.I)
_ROLE_WORDS = re.compile(
    r"^(?:(?:little|big|older|younger|best|old|new)\s+)?(?:sister|brother|sis|bro|mom|mum|mother|dad|father|wife|"
    r"husband|son|daughter|friend|neighbou?r|cousin|aunt|uncle|grandma|grandpa|grandmother|grandfather|partner|"
    r"boyfriend|girlfriend|fianc[ée]e?|boss|colleague|coworker|dog|cat|puppy|kitten|pet|horse|bird)\s+(?=\S)", re.I)
_POSSESSIVE = re.compile(r"(?:'s|’s|s'|')$", re.I)
_COMPATIBLE = {"thing"}  # an untyped mention may join an entity of any type


def entity_key(name: str, kind: str = "thing") -> str:
    """The resolution key of a surface form: "my sister Ana" and "Ana's" -> "ana"; plural things lose their s.

    >>> entity_key("my sister Ana"), entity_key("Ana's"), entity_key("pottery classes")
    ('ana', 'ana', 'pottery class')
    """
    key = " ".join(name.replace("\u2019", "'").strip(" .,!?;:\"").split()).lower()
    key = _DETERMINERS.sub("", key)
    if _DETERMINERS.match(name.strip()):  # "my sister Ana" names Ana; "Sister Act" stays whole
        key = _ROLE_WORDS.sub("", key)
    key = _POSSESSIVE.sub("", key).strip()
    if kind not in ("person", "pet") and len(key) > 4:
        key = _singular(key)
    return key


def _singular(key: str) -> str:
    if key.endswith(("sses", "xes", "ches", "shes")):
        return key[:-2]
    if key.endswith("ies"):
        return key[:-3] + "y"
    return key[:-1] if key.endswith("s") and not key.endswith(("ss", "us", "is")) else key


def _id(user_id: str, *parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x00".join((user_id, *parts))))


R = TypeVar("R", Entity, Relation)


def _by_id(records: Sequence[R], vectors: np.ndarray) -> tuple[list[R], np.ndarray]:
    """Records and their vectors (row for row) sorted by id: the same graph whatever the row order."""
    order = sorted(range(len(records)), key=lambda n: records[n].id)
    return [records[n] for n in order], (vectors[order] if len(order) and len(vectors) else vectors)


class UserGraph:
    """One user's entities and relations, with a networkx view for traversal."""

    def __init__(self, user_id: str, entities: Sequence[Entity], entity_vectors: np.ndarray,
                 relations: Sequence[Relation], relation_vectors: np.ndarray) -> None:
        entities, entity_vectors = _by_id(entities, entity_vectors)
        relations, relation_vectors = _by_id(relations, relation_vectors)
        self.user_id = user_id
        self.entities = {e.id: e for e in entities}
        self.entity_vectors = {e.id: v for e, v in zip(entities, entity_vectors)}
        self.relations = {r.id: r for r in relations}
        self.relation_vectors = {r.id: v for r, v in zip(relations, relation_vectors)}
        self.by_key = {entity_key(a, e.type): e.id for e in entities for a in (e.name, *e.aliases)}
        self.graph: nx.MultiDiGraph[str] = nx.MultiDiGraph()
        for e in entities:
            self.graph.add_node(e.id, name=e.name, type=e.type)
        for r in relations:
            self.graph.add_edge(r.source, r.target, key=r.id, relation=r.relation)

    @classmethod
    def from_arrow(cls, user_id: str, entities: pa.Table, relations: pa.Table, dimension: int) -> UserGraph:
        return cls(user_id, from_table(Kind.ENTITY, entities), vectors_of(entities, dimension),
                   from_table(Kind.RELATION, relations), vectors_of(relations, dimension))

    # --- building -----------------------------------------------------------------
    def resolve(self, name: str, kind: str, similar: Callable[[str, str], tuple[str, float] | None]) -> str | None:
        """The id of the entity ``name`` denotes, if known (by key, then by embedding)."""
        key = entity_key(name, kind)
        if key in self.by_key:
            return self.by_key[key]
        match = similar(name, kind)
        return match[0] if match else None

    def nearest_entity(self, vector: np.ndarray, kind: str, threshold: float) -> tuple[str, float] | None:
        """The most similar entity of a compatible type above ``threshold``."""
        best: tuple[str, float] | None = None
        for entity_id, other in self.entity_vectors.items():
            etype = self.entities[entity_id].type
            if etype != kind and kind not in _COMPATIBLE and etype not in _COMPATIBLE:
                continue
            sim = float(other @ vector)
            if sim >= threshold and (best is None or (-sim, entity_id) < (-best[1], best[0])):
                best = (entity_id, sim)
        return best

    def upsert_entity(self, name: str, kind: str, evidence: str, vector: np.ndarray,
                      entity_id: str | None) -> Entity:
        """Add an alias and evidence to a known entity, or create one."""
        if entity_id is None:
            entity_id = _id(self.user_id, "entity", entity_key(name, kind))
        old = self.entities.get(entity_id)
        if old is None:
            entity = Entity(entity_id, self.user_id, name.strip(), kind, (), (evidence,))
            self.entity_vectors[entity_id] = vector
            self.graph.add_node(entity_id, name=entity.name, type=kind)
        else:
            aliases = old.aliases if name in (old.name, *old.aliases) else old.aliases + (name.strip(),)
            etype = kind if old.type in _COMPATIBLE else old.type
            evidence_ids = old.evidence_ids if evidence in old.evidence_ids else old.evidence_ids + (evidence,)
            entity = replace(old, aliases=aliases, type=etype, evidence_ids=evidence_ids)
        self.entities[entity_id] = entity
        self.by_key[entity_key(name, kind)] = entity_id
        return entity

    def relate(self, triple: Triple, source: str, target: str, when: datetime, evidence: str,
               confidence: float) -> list[Relation]:
        """Add (or reinforce) an edge; close the old edge of a functional relation. Returns changes.

        An edge that has ``evidence`` already was absorbed from this episode before (a batch
        replayed after a crash): it is returned as it is, and nothing else is closed again.
        """
        rid = _id(self.user_id, "relation", source, triple.relation, target)
        known = self.relations.get(rid)
        if known is not None and evidence in known.evidence_ids:
            return [known]
        changed = []
        if triple.functional:
            for edge in self._out(source, triple.relation):
                if edge.target != target and edge.valid_to is None and edge.valid_from <= when:
                    changed.append(self._store(replace(edge, valid_to=when)))
        old = self.relations.get(rid)
        if old is None:
            text = f"{self.entities[source].name} {triple.relation.replace('_', ' ')} {self.entities[target].name}"
            new = Relation(rid, self.user_id, source, triple.relation, target, when, None, (evidence,),
                           confidence, text)
            self.graph.add_edge(source, target, key=rid, relation=triple.relation)
            changed.append(self._store(new))
        elif evidence not in old.evidence_ids:
            changed.append(self._store(replace(old, evidence_ids=old.evidence_ids + (evidence,),
                                               confidence=min(0.99, 1 - (1 - old.confidence) * (1 - confidence)))))
        return changed

    def _store(self, relation: Relation) -> Relation:
        self.relations[relation.id] = relation
        return relation

    def _out(self, source: str, relation: str) -> list[Relation]:
        return [self.relations[k] for _, _, k, d in self.graph.out_edges(source, keys=True, data=True)
                if d["relation"] == relation]

    # --- queries ----------------------------------------------------------------
    def find(self, name: str) -> Entity | None:
        """The entity a surface form names, by resolution key."""
        for kind in ("person", "thing"):
            entity_id = self.by_key.get(entity_key(name, kind))
            if entity_id is not None:
                return self.entities[entity_id]
        return None

    def facts(self, entity_id: str, at: datetime | None = None) -> list[Relation]:
        """Relations into or out of an entity, valid at ``at`` (default: now open)."""
        keys = [k for _, _, k in self.graph.out_edges(entity_id, keys=True)]
        keys += [k for _, _, k in self.graph.in_edges(entity_id, keys=True)]
        return [r for r in (self.relations[k] for k in keys) if self._valid(r, at)]

    def facts_ever(self, entity_id: str) -> list[Relation]:
        """Every relation of an entity, closed ones included."""
        return [r for r in self.relations.values() if entity_id in (r.source, r.target)]

    def neighbours(self, entity_id: str, at: datetime | None = None) -> list[tuple[Relation, Entity]]:
        """Each valid relation of an entity with the entity at its other end."""
        out = []
        for r in self.facts(entity_id, at):
            other = r.target if r.source == entity_id else r.source
            out.append((r, self.entities[other]))
        return out

    def paths(self, source: str, target: str, max_hops: int = 3, at: datetime | None = None) -> list[list[Relation]]:
        """Chains of valid relations linking two entities (either direction), shortest first."""
        view: nx.Graph[str] = nx.Graph()
        for r in self.relations.values():
            if self._valid(r, at):
                view.add_edge(r.source, r.target, relation=r.id)
        if source not in view or target not in view:
            return []
        chains = []
        for nodes in nx.all_simple_paths(view, source, target, cutoff=max_hops):
            chains.append([self.relations[view.edges[a, b]["relation"]] for a, b in zip(nodes, nodes[1:])])
        return sorted(chains, key=len)

    @staticmethod
    def _valid(relation: Relation, at: datetime | None) -> bool:
        return relation.valid_to is None if at is None else relation.valid_at(at)

    # --- rows -----------------------------------------------------------------------
    def entity_records(self, ids: Sequence[str]) -> tuple[list[Entity], np.ndarray]:
        """Entities with these ids and their name vectors, ready to write."""
        found = [self.entities[i] for i in ids if i in self.entities]
        return found, stack_vectors([self.entity_vectors[e.id] for e in found], 0)

    def relation_records(self, relations: Sequence[Relation]) -> tuple[list[Relation], np.ndarray]:
        """Relations and their text vectors, ready to write."""
        return list(relations), stack_vectors([self.relation_vectors[r.id] for r in relations], 0)

