"""Which embedder a folder gets: the one place that knows every provider.

Its own module so that the providers (embedding.py, openai_provider.py) depend on the shared
protocol and errors only, never on each other.
"""

from __future__ import annotations

from .embedding import Embedder, HashEmbedder, LocalEmbedder
from .settings import EmbeddingSettings


def create_embedder(settings: EmbeddingSettings) -> Embedder:
    if settings.provider == "local":
        return LocalEmbedder(settings.model, settings.batch_size)
    if settings.provider == "hash":
        return HashEmbedder(settings.dimensions or 256)
    if settings.provider == "openai":
        from .openai_provider import (
            OpenAIEmbedder,  # the openai package loads only for this provider
        )

        return OpenAIEmbedder(settings)
    raise ValueError(f"unknown embedding provider {settings.provider!r}")
