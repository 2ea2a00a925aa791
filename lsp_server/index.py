"""One workspace folder's index: where it lives and the resources it holds open.

The store, the file snapshot, the embedding cache and the symbol index of a folder live
together in a per-workspace directory of the user's cache directory (not inside the
workspace). The server and the CLI open a folder through ``WorkspaceIndex`` and then
use ``sync`` and ``search`` on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from . import store as store_mod
from .embedding import Embedder, EmbeddingCache, create_embedder, model_key
from .settings import Settings
from .store import Store
from .symbols import SymbolIndex
from .sync import Snapshot

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Where indexes live: $CODE_CONTEXT_CACHE_DIR, else the platform's user cache directory."""
    override = os.environ.get("CODE_CONTEXT_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("code-context"))


def workspace_key(root: Path) -> str:
    return hashlib.sha256(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def index_dir_for(root: Path) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in root.name)[:40] or "root"
    return cache_root() / "workspaces" / f"{safe}-{workspace_key(root)}"


def collection_name(root: Path, embedder_key: str) -> str:
    digest = hashlib.sha256(f"{root}\0{embedder_key}".encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"cc_{digest}"


@attrs.define
class IndexState:
    """What status reports; written by sync, read by any thread."""

    state: str = "idle"  # idle | indexing | error
    files: int = 0
    indexed_files: int = 0
    last_error: str | None = None
    skipped: dict[str, str] = attrs.Factory(dict)


class WorkspaceIndex:
    def __init__(self, root: Path, settings: Settings, embedder: Embedder | None = None) -> None:
        self.root = root.resolve()
        self.settings = settings
        self.dir = index_dir_for(self.root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder or create_embedder(settings.embedding)
        self.state = IndexState()
        # Serialises writers (full sync, file events, embedding upserts) of this folder.
        self.write_lock = threading.RLock()
        self.snapshot = Snapshot(self.dir / "state.db")
        self.cache = EmbeddingCache(self.dir / "state.db")
        self.symbols = SymbolIndex(self.dir / "state.db")
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._write_meta()

    @property
    def store_uri(self) -> str:
        uri = self.settings.store.uri
        if not uri:
            return str(self.dir / "milvus.db")
        if uri.endswith(".db") and "://" not in uri:
            return str(Path(uri).expanduser().resolve())
        return uri

    @property
    def store(self) -> Store:
        """Opened on first use: the embedding model may have to be asked for its dimension."""
        with self._store_lock:
            if self._store is None:
                key = model_key(self.embedder)
                token = os.environ.get(self.settings.store.token_env) if self.settings.store.token_env else None
                self._store = Store(self.store_uri, collection_name(self.root, key), self.embedder.dimension, token)
                self.snapshot.bind_model(key)
            return self._store

    def _write_meta(self) -> None:
        meta = {"root": str(self.root)}
        try:
            (self.dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        except OSError as exc:
            log.warning("cannot write %s: %s", self.dir / "meta.json", exc)

    def relative(self, path: Path) -> str | None:
        """The workspace-relative posix path, or None when the path is outside the workspace."""
        try:
            resolved = path.resolve() if path.is_absolute() else (self.root / path).resolve()
            rel = resolved.relative_to(self.root)
        except (ValueError, OSError):
            return None
        return rel.as_posix()

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "root": str(self.root),
            "state": self.state.state,
            "files": self.state.files or self.snapshot.count(),
            "indexedFiles": self.snapshot.count(done_only=True),
            "symbols": len(self.symbols),
            "embedding": self.embedder.describe(),
            "store": {"uri": store_mod.display_uri(self.store_uri)},
            "indexDir": str(self.dir),
        }
        try:
            info["chunks"] = self.store.count()
            info["pendingChunks"] = self.store.count_pending()
        except Exception as exc:  # status must answer even when the store is down
            info["chunks"] = 0
            info["pendingChunks"] = 0
            info["lastError"] = str(exc)
        if self.state.last_error:
            info["lastError"] = self.state.last_error
        return info

    def clear(self) -> None:
        """Forget everything indexed for this folder, in this model's collection and on disk."""
        with self.write_lock:
            try:
                self.store.drop()
            finally:
                with self._store_lock:
                    if self._store is not None:
                        self._store.close()
                    self._store = None
                self.snapshot.clear()
                self.symbols.clear()
                self.state = IndexState()

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
        self.snapshot.close()
        self.cache.close()
        self.symbols.close()
        close_embedder = getattr(self.embedder, "close", None)
        if close_embedder is not None:
            close_embedder()


def remove_index_dir(root: Path) -> None:
    shutil.rmtree(index_dir_for(root.resolve()), ignore_errors=True)
