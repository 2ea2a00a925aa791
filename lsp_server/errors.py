"""The typed errors that cross module boundaries, and what each face makes of them.

- InvalidInput: a user's or client's input is wrong; ``field`` names what to fix
  (JSON-RPC -32602, an MCP tool error, CLI exit code 2).
- StoreError / StoreLocked: the vector store failed or is held by another process
  (-32603, CLI exit code 1; searches fall back where they can).
- EmbeddingError: the embedding provider failed; ``retryable`` says whether waiting helps
  (hybrid search falls back to keywords; chunks stay pending).
- FolderUnavailable: a folder's index cannot answer: it is opening, its owner went away, or
  the owner indexes it with other settings.
"""

from __future__ import annotations


class InvalidInput(ValueError):
    """Bad input from a user or client; ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class StoreError(Exception):
    """The vector store failed or cannot be reached; the message says which and where."""


class StoreLocked(StoreError):
    """A Milvus Lite store is held by another process: Milvus Lite allows one at a time."""


class EmbeddingError(Exception):
    """An embedding request failed.

    ``retryable`` errors (rate limits, outages) leave work pending for the next sync;
    the others (bad key, unknown model) need the user to change something.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class FolderUnavailable(Exception):
    """The folder cannot answer: its index failed to open, or its owner uses other settings."""
