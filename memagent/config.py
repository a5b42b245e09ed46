"""Typed settings with safe embedded defaults. Nothing here reads the environment."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetrievalSettings(BaseModel):
    """How search finds and ranks episodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidates: int = Field(60, ge=1, le=1000, description="hits each signal contributes before fusion")
    lexical_weight: float = Field(0.6, ge=0, description="weight of normalised BM25 scores")
    vector_weight: float = Field(0.4, ge=0, description="weight of normalised cosine similarities")
    lexical_context: bool = Field(True,
                                  description="BM25 over each turn with the end of the turn before it "
                                  "(Config.context_words); False = the turn alone")
    time_boost: float = Field(0.5, ge=0,
                              description="hits inside a time range named in the query gain this times the best score")
    speaker_boost: float = Field(0.5, ge=0, description="hits said by the one speaker the query names "
                                 "(a role that is a name, e.g. 'Melanie') gain this times the best score")
    neighbour_hits: int = Field(3, ge=0, description="top hits whose adjacent session turns are added")
    neighbour_decay: float = Field(0.35, ge=0, le=1, description="score of an added neighbour relative to its hit")
    fact_weight: float = Field(0.3, ge=0,
                               description="weight of profile statements and graph facts that point at an episode")
    fact_candidates: int = Field(20, ge=0, le=1000, description="derived items matched per query; 0 = episodes only")
    support_decay: float = Field(
        0.9, ge=0, le=1, description="score a correction lends to the episodes that agree with it, relative to its own")


class StorageSettings(BaseModel):
    """When indexes are built and refreshed, and how the storage engines are tuned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vector_index_min_rows: int = Field(100_000, ge=256,
                                       description="build the ANN index once the table holds this many rows")
    exact_search_max_user_rows: int = Field(50_000, ge=0, description="users with fewer rows get exact vector search")
    optimize_every_writes: int = Field(50, ge=1, description="refresh indexes and compact after this many writes")
    optimize_every_rows: int = Field(2000, ge=1, description="... or after this many new rows, whichever comes first")
    keep_versions_hours: float = Field(1.0, ge=0,
                                       description="table versions older than this are cleaned up on optimize")
    background_upkeep: bool = Field(True, description="refresh indexes and compact in a background thread, "
                                    "not in the write that made it due")
    postgres_pool_size: int = Field(8, ge=1, description="PostgreSQL: connections per process for reads and writes "
                                    "(per-user locks have a pool of their own, twice this size)")
    hnsw_m: int = Field(16, ge=2, le=100, description="PostgreSQL: links per node of the HNSW vector index")
    hnsw_ef_construction: int = Field(64, ge=4, le=1000, description="PostgreSQL: candidates kept while the "
                                      "HNSW index is built")
    hnsw_ef_search: int = Field(100, ge=1, le=1000, description="PostgreSQL: candidates kept per HNSW search")


class CacheSettings(BaseModel):
    """How much each in-process cache may hold (all users of one ``Memory`` together); every
    cache is a least-recently-used one, so memory stays flat under load once they are full."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_rows: int = Field(200_000, ge=0, description="episode rows (with vectors) kept for exact search and "
                              "reads; about 2 kB each with the packaged embedder")
    derived_users: int = Field(128, ge=1, description="users whose profile, graph and usage are kept loaded")
    change_tokens: int = Field(100_000, ge=1, description="(user, table) change tokens remembered to skip a "
                               "reload; a forgotten one costs one table check-out")
    lance_index_bytes: int = Field(64 * 2**20, ge=0, description="LanceDB's cache of index pages (its own "
                                   "default is 6 GiB); a miss reads the page from disk again")
    lance_metadata_bytes: int = Field(32 * 2**20, ge=0, description="LanceDB's cache of table manifests and file "
                                      "metadata (its own default is 1 GiB)")


class ConsolidationSettings(BaseModel):
    """How episodes become profile statements and graph facts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_episodes: int = Field(256, ge=1, description="episodes read, extracted and written per step")
    merge_similarity: float = Field(0.86, ge=0, le=1,
                                    description="cosine above which two statements of one subject and category merge")
    entity_similarity: float = Field(0.9, ge=0, le=1, description="cosine above which two entity names are one entity")
    summary_sentences: int = Field(3, ge=1, description="statements in an extractive session summary")
    min_new_episodes: int = Field(1, ge=1,
                                  description="a user is due for consolidation with this many new episodes ...")
    max_delay_s: float = Field(3600.0, ge=0, description="... or when the oldest new episode is this old")


class AnswerSettings(BaseModel):
    """How ``Memory.ask`` builds its context and when it abstains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    context_tokens: int = Field(1500, ge=16, description="token budget of the context block (WordPiece tokens)")
    answer_evidence: int = Field(8, ge=1, description="memories whose sentences the extractive answer reads")
    min_similarity: float = Field(0.25, ge=-1, le=1,
                                  description="abstain when the answering sentence is less similar to the question")
    sentence_cache: int = Field(
        20_000, ge=0, description="sentence embeddings kept per process for answers (all users together); 0 = none")


class ScheduleSettings(BaseModel):
    """Background jobs (``Memory.start()`` or ``memagent serve``); intervals in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consolidate_every_s: float = Field(300.0, gt=0, description="look for users due for consolidation this often")
    forget_every_s: float = Field(86_400.0, gt=0, description="run the forgetting policy over every user this often")
    maintain_every_s: float = Field(3_600.0, gt=0, description="compact storage and refresh indexes this often")
    job_store: str = Field("memory", description='"memory", or a SQLAlchemy URL for a persistent job store')
    max_retries: int = Field(5, ge=0,
                             description="a failing job is retried this many times before it waits for its next run")
    backoff_s: float = Field(30.0, gt=0, description="first retry delay; doubles on each retry")
    backoff_max_s: float = Field(3_600.0, gt=0, description="longest retry delay")


class ForgettingSettings(BaseModel):
    """How memories fade (``memagent.policies.forgetting``); times in days of event time.

    stability = base_days * (1 + importance_gain * importance) * (1 + reinforcement_gain) ** uses
    / (1 + demotion) ** bad_ratings; retention = exp(-days since last use / stability).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="run the forgetting policy; False = nothing is ever archived or restored")
    base_days: float = Field(
        30.0, gt=0, description="stability of an unimportant, never used memory (retention 1/e after this many days)")
    importance_gain: float = Field(
        25.0, ge=0, description="stability is multiplied by 1 + this * importance (importance in [0, 1])")
    reinforcement_gain: float = Field(
        0.5, ge=0, description="each use in an answer or good rating multiplies stability by 1 + this")
    demotion: float = Field(1.0, ge=0, description="each bad rating divides stability by 1 + this")
    archive_below: float = Field(0.15, ge=0, le=1,
                                 description="archive a memory once its retention falls below this; 0 = never archive")
    min_age_days: float = Field(14.0, ge=0, description="memories younger than this (event time) are never archived")
    fallback_min_similarity: float = Field(
        0.3, ge=-1, le=1,
        description="search also reads archived memories when the best active hit's cosine similarity is below this")


class FeedbackSettings(BaseModel):
    """How ratings and corrections adapt a user's memory and ranking."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(0.1, gt=0, le=1,
                                 description="step of the per-user signal and route weights after each rating")
    min_weight: float = Field(0.25, gt=0,
                              description="lower clamp of a per-user signal or route weight (1.0 = unchanged)")
    max_weight: float = Field(4.0, gt=0, description="upper clamp of a per-user signal or route weight")
    correction_importance: float = Field(
        1.0, ge=0, le=1, description="importance of the episode a correction stores (it is also pinned)")
    demote_factor: float = Field(
        0.5, ge=0, le=1,
        description="a bad rating multiplies the ranking score of the memories it used by this, "
                    "for questions like the rated one")
    similar_question: float = Field(
        0.7, ge=-1, le=1,
        description="a rating counts for a question of the same route at least this similar (cosine) to the rated one")

    @model_validator(mode="after")
    def _clamps_in_order(self) -> FeedbackSettings:
        if self.min_weight > self.max_weight:
            raise ValueError(f"min_weight ({self.min_weight}) is above max_weight ({self.max_weight})")
        return self


class Config(BaseModel):
    """Everything ``Memory`` needs; every field has an embedded default.

    >>> Config(data_dir="/tmp/mem").storage.vector_index_min_rows
    100000
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: str | Path = Field("memagent-data",
                                 description="a local directory, a LanceDB URI such as s3://bucket/path, "
                                 "a postgresql:// URL, or memory:// (nothing persists)")
    embedder_path: str | None = Field(
        None, description="a local sentence-transformers model; None = packaged all-MiniLM-L6-v2")
    embedder_device: str = Field("cpu", description="where the sentence-transformers model runs: cpu, cuda, mps...")
    max_message_chars: int = Field(32_000, ge=1)
    max_batch: int = Field(10_000, ge=1, description="messages per add() call")
    embed_role: bool = Field(True, description="prefix each text with its speaker before embedding and indexing")
    context_words: int = Field(8, ge=0, description="last words of the previous turn that each turn's full-text "
                               "context holds (retrieval.lexical_context); chosen by leave-one-group-out")
    retrieval: RetrievalSettings = RetrievalSettings()
    storage: StorageSettings = StorageSettings()
    caches: CacheSettings = CacheSettings()
    consolidation: ConsolidationSettings = ConsolidationSettings()
    answer: AnswerSettings = AnswerSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    forgetting: ForgettingSettings = ForgettingSettings()
    feedback: FeedbackSettings = FeedbackSettings()


def redacted(location: str | Path) -> str:
    """A data location fit to print: a URL's password replaced by ``***``.

    >>> redacted("postgresql://app:s3cret@db/memagent"), redacted("./data")
    ('postgresql://app:***@db/memagent', './data')
    """
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", str(location))
