"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint.

OpenAI itself, Azure OpenAI's v1 API, Ollama, vLLM, TEI and LiteLLM all speak this protocol;
``base_url`` selects one. The ``openai`` client's own retries are off: retries here are
counted (status shows them), honour ``Retry-After`` and stop early when a sibling request
has already failed. The key is read from the environment, passed only to the client, and
scrubbed from every message this module produces.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import openai

from .embedding import EmbedderInfo, normalise
from .errors import EmbeddingError
from .settings import EmbeddingSettings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "text-embedding-3-small"
# Sent as the key when none is set and base_url points at a local server that ignores it.
PLACEHOLDER_KEY = "not-needed"
# No tokenizer offline: ~3 UTF-8 bytes per token over-counts English and code, and CJK text
# (3 bytes a character, about a token each) is still counted fairly.
BYTES_PER_TOKEN = 3
# OpenAI's per-input limit (8191 tokens, about 24k characters); longer inputs are cut, not failed.
MAX_INPUT_TOKENS = 8191
# Backoff without Retry-After: BACKOFF_BASE * 2**attempt seconds, capped, with jitter.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 20.0
# A server asking us to wait longer than this gets its answer at the next sync instead.
MAX_RETRY_AFTER = 60.0
PROBE_TEXT = "dimension probe"
# OpenAI's own models, whose vector size is known without asking: the store opens with it,
# so chunks are written even when the key is rejected. Used only against api.openai.com,
# where the name means this model (a gateway may serve anything under it).
OPENAI_HOST = "api.openai.com"
KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                    "text-embedding-ada-002": 1536}


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately high token count; requests are sized with it."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    return max(1, math.ceil(size / BYTES_PER_TOKEN))


def truncate(text: str, max_tokens: int) -> str:
    """Cut text so estimate_tokens(text) <= max_tokens, never splitting a UTF-8 character."""
    if estimate_tokens(text) <= max_tokens:
        return text
    limit = max_tokens * BYTES_PER_TOKEN
    if text.isascii():
        return text[:limit]
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


def plan_batches(texts: list[str], max_inputs: int, max_tokens: int) -> Iterator[list[str]]:
    """Consecutive runs of texts, each within both the count and the token budget.

    Inputs must already be truncated to max_tokens, so every input fits some request.
    """
    batch: list[str] = []
    budget = 0
    for text in texts:
        cost = estimate_tokens(text)
        if batch and (len(batch) >= max_inputs or budget + cost > max_tokens):
            yield batch
            batch, budget = [], 0
        batch.append(text)
        budget += cost
    if batch:
        yield batch


class _Abort(threading.Event):
    """Shared by the batches of one call: set by the first to fail for good, so the others
    stop retrying and queued ones are never sent, and all of them report its error."""

    error: EmbeddingError | None = None

    def fail(self, error: EmbeddingError) -> None:
        if self.error is None:
            self.error = error
        self.set()

    def reraise(self) -> EmbeddingError:
        cause = self.error
        if cause is None:
            return EmbeddingError("embedding cancelled: another request failed", retryable=True)
        return EmbeddingError(str(cause), retryable=cause.retryable)


@dataclass
class _Failure:
    message: str
    retryable: bool
    retry_after: float | None = None


class OpenAIEmbedder:
    """The Embedder protocol over an OpenAI-compatible endpoint, with bounded concurrency."""

    provider = "openai"

    def __init__(self, settings: EmbeddingSettings, *, backoff_base: float = BACKOFF_BASE) -> None:
        self.model = settings.model or DEFAULT_MODEL
        self._settings = settings
        self._backoff_base = backoff_base
        key = os.environ.get(settings.api_key_env, "").strip()
        if not key and not settings.base_url:
            raise EmbeddingError(
                f"no API key for the OpenAI provider: set ${settings.api_key_env} "
                "(or codeContext.embedding.baseUrl for a local server that needs none)",
                retryable=False,
            )
        # Only a real key is a secret worth scrubbing.
        self._secret = key or None
        self._client = openai.OpenAI(
            api_key=key or PLACEHOLDER_KEY,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=0,
        )
        url = self._client.base_url
        self.host = f"{url.host}:{url.port}" if url.port else str(url.host)
        # With `dimensions` set, every response must match it; for OpenAI's own models at
        # OpenAI, the known size; otherwise the first response decides.
        self._known = None if settings.dimensions or url.host != OPENAI_HOST else KNOWN_DIMENSIONS.get(self.model)
        self._dimension: int | None = settings.dimensions or self._known
        self._max_input_tokens = min(MAX_INPUT_TOKENS, settings.max_tokens_per_request)
        self._lock = threading.Lock()
        # Bounds requests in flight across all callers, including single-batch calls made inline.
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self.requests = 0
        self.retries = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, host={self.host!r})"

    # -- Embedder protocol -----------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Known from settings or an earlier response; else one small probe request."""
        if self._dimension is None:
            self._embed_batch([PROBE_TEXT], _Abort())
        assert self._dimension is not None
        return self._dimension

    def assume_dimension(self, dimension: int) -> None:
        """Take the size this model's vectors had before (an index holds them) for the one it
        will answer with, so that it need not be asked now; a response must then match it."""
        with self._lock:
            if self._dimension is None:
                self._dimension = dimension

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # The API rejects empty strings; a space embeds as "nothing here".
        inputs = [truncate(t, self._max_input_tokens) if t else " " for t in texts]
        batches = list(plan_batches(inputs, self._settings.batch_size, self._settings.max_tokens_per_request))
        stop = _Abort()
        if len(batches) == 1:
            return self._embed_batch(batches[0], stop)
        executor = self._pool()
        futures: list[Future[np.ndarray]] = [executor.submit(self._embed_batch, b, stop) for b in batches]
        try:
            return np.concatenate([f.result() for f in futures])
        except BaseException:
            stop.set()  # siblings stop retrying; queued ones never start (a failed batch set it already)
            for f in futures:
                f.cancel()
            raise

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def describe(self) -> EmbedderInfo:
        return EmbedderInfo(self.provider, self.model, self._dimension, self.host)

    ready = True  # a remote model is always loaded

    def warm_up(self) -> None:
        """Nothing to load: the endpoint is asked on first use."""

    def stats(self) -> dict[str, int]:
        """Counters for status and tests: HTTP requests sent, retries, batches given up."""
        with self._lock:
            return {"requests": self.requests, "retries": self.retries, "failures": self.failures}

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._client.close()

    # -- one batch ---------------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._settings.concurrency, thread_name_prefix="openai-embed")
            return self._executor

    def _embed_batch(self, inputs: list[str], stop: _Abort) -> np.ndarray:
        """One request's vectors, retrying transient failures up to settings.max_retries."""
        attempt = 0
        while True:
            if stop.is_set():  # a sibling failed for good: this call fails anyway, send nothing
                raise stop.reraise()
            outcome = self._attempt(inputs)
            if isinstance(outcome, np.ndarray):
                return outcome
            if not outcome.retryable or attempt >= self._settings.max_retries:
                break
            delay = outcome.retry_after if outcome.retry_after is not None else self._backoff(attempt)
            if delay > MAX_RETRY_AFTER:
                outcome.message += f"; the server asks to wait {delay:.0f}s"
                break
            attempt += 1
            with self._lock:
                self.retries += 1
            log.info("embedding request failed (%s); retry %d of %d in %.2fs",
                     outcome.message, attempt, self._settings.max_retries, delay)
            if stop.wait(delay):
                raise stop.reraise()
        with self._lock:
            self.failures += 1
        if attempt:
            outcome.message += f" (gave up after {attempt} retries)"
        error = EmbeddingError(outcome.message, retryable=outcome.retryable)
        stop.fail(error)
        raise error

    def _backoff(self, attempt: int) -> float:
        return min(BACKOFF_CAP, self._backoff_base * 2 ** attempt) * random.uniform(0.5, 1.0)

    def _attempt(self, inputs: list[str]) -> np.ndarray | _Failure:
        """Send one request; the vectors, or what went wrong. Never raises for HTTP trouble,
        so no exception carrying the request (and its Authorization header) escapes."""
        extra: dict[str, Any] = {"dimensions": self._settings.dimensions} if self._settings.dimensions else {}
        with self._lock:
            self.requests += 1
        try:
            with self._slots:
                # "float" rather than the client's default base64: every compatible server has it.
                response = self._client.embeddings.create(
                    model=self.model, input=inputs, encoding_format="float", **extra)
        except openai.APIStatusError as exc:
            return self._status_failure(exc.status_code, exc.response.headers, exc.body)
        except openai.APITimeoutError:
            return _Failure(f"request to {self.host} timed out after {self._settings.timeout:g}s", True)
        except openai.APIConnectionError:
            return _Failure(f"cannot connect to {self.host}", True)
        except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError, KeyError):
            return _Failure(f"malformed response from {self.host}", True)
        return self._vectors(response, len(inputs))

    def _status_failure(self, status: int, headers: Mapping[str, str], body: object) -> _Failure:
        where = f"at {self.host}"
        env = self._settings.api_key_env
        if status == 401:
            return _Failure(f"authentication failed (401) {where}: the endpoint rejected the API key in ${env}; "
                            f"set a valid key in ${env}", False)
        if status == 403:
            return _Failure(f"permission denied (403) {where} for model {self.model!r}: "
                            f"check that the key in ${env} may use it", False)
        if status == 404:
            return _Failure(f"model {self.model!r} not found (404) {where}: check codeContext.embedding.model "
                            "(and codeContext.embedding.baseUrl, which usually ends in /v1)", False)
        if status == 429:
            return _Failure(f"rate limited (429) {where}", True, _retry_after(headers))
        if status in (408, 409) or status >= 500:
            kind = "server error" if status >= 500 else "temporary error"
            return _Failure(f"{kind} ({status}) {where}", True, _retry_after(headers))
        return _Failure(f"request rejected ({status}) {where}: {self._detail(body)}", False)

    def _detail(self, body: object) -> str:
        """The server's own error message, without the key even if the server echoed it."""
        inner = body.get("error", body) if isinstance(body, dict) else body
        text = inner.get("message", inner) if isinstance(inner, dict) else inner
        text = str(text)[:300]
        return text.replace(self._secret, "<redacted>") if self._secret else text

    def _vectors(self, response: object, count: int) -> np.ndarray | _Failure:
        """Check a parsed response thoroughly: bad vectors must never reach the index."""
        malformed = _Failure(f"malformed response from {self.host}", True)
        try:
            data = list(response.data)  # type: ignore[attr-defined]
            if len(data) != count:
                return _Failure(f"{self.host} returned {len(data)} vectors for {count} inputs", True)
            rows: list[object] = [None] * count
            for item in data:
                rows[item.index] = item.embedding
            if any(r is None or isinstance(r, str) for r in rows):
                return malformed
            sizes = {len(r) for r in rows}  # type: ignore[arg-type]
            if len(sizes) != 1:
                return _Failure(f"{self.host} returned vectors of mixed dimensions {sorted(sizes)}", True)
            vectors = np.asarray(rows, dtype=np.float32)
        except (AttributeError, TypeError, ValueError, IndexError):
            return malformed
        if vectors.ndim != 2 or vectors.shape[1] == 0 or not np.isfinite(vectors).all():
            return malformed
        got = vectors.shape[1]
        with self._lock:
            if self._dimension is None:
                self._dimension = got
            expected = self._dimension
        if got != expected:
            if self._settings.dimensions:
                hint = ("codeContext.embedding.dimensions asks for it; unset that if the model "
                        "cannot shorten its vectors")
            elif self._known:
                hint = f"the size of {self.model!r}; set codeContext.embedding.dimensions to {got} if that is right"
            else:
                hint = "the model changed; reindex"
            return _Failure(f"{self.host} returned {got}-dimensional vectors, expected {expected} ({hint})", False)
        return normalise(vectors)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: Retry-After-Ms, Retry-After seconds or HTTP date."""
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (ValueError, TypeError, OverflowError):
        return None
