"""One workspace folder's index: where it lives and the resources it holds open.

The store, the file table, the embedding cache and the symbol index of a folder live
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
import time
from pathlib import Path
from typing import Any

import attrs

from . import redaction, store_uri
from . import store as store_mod
from .chunking import DEFAULT_SIZES, ChunkSizes
from .embedders import create_embedder
from .embedding import Embedder, EmbedderInfo, model_key
from .errors import EmbeddingError, StoreError, StoreLocked
from .locations import index_dir_for, private_dir
from .settings import Settings
from .state import open_state
from .store import Deletion, Store

log = logging.getLogger(__name__)

# After the store failed to open, status within this many seconds reports the same error
# instead of trying again (clients poll status; syncs and searches always try).
STORE_RETRY_SECONDS = 2.0
# The collection that holds a folder's chunks while the embedding model cannot say its
# dimension (a rejected key, an endpoint down): keywords only, every row embedded=false.
# Its rows carry no vectors, so any model's collection can adopt them.
PROVISIONAL_KEY = "provisional"
PROVISIONAL_DIMENSION = 8
ADOPT_BATCH = 500


def collection_name(root: Path, embedder_key: str) -> str:
    digest = hashlib.sha256(f"{root}\0{embedder_key}".encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"cc_{digest}"


@attrs.frozen
class IndexStatus:
    """What a folder's index holds now, for status in every face (wire.py maps it)."""

    root: Path
    state: str  # idle | indexing | error
    files: int
    indexed_files: int
    symbols: int
    redactions: int  # secrets replaced in the indexed files' text (never stored or embedded)
    redacted_files: int
    embedding: EmbedderInfo
    store_uri: str  # without credentials
    index_dir: Path
    chunks: int
    pending_chunks: int
    last_error: str | None


@attrs.define
class IndexState:
    """What status reports; written by sync, read by any thread."""

    state: str = "idle"  # idle | indexing | error
    files: int = 0
    indexed_files: int = 0
    last_error: str | None = None
    skipped: dict[str, str] = attrs.Factory(dict)
    # Chunks without vectors, kept up to date by a running sync so that status need not ask
    # the store (whose counts take up to a second while a large index is being written).
    pending_chunks: int = 0


class WorkspaceIndex:
    def __init__(self, root: Path, settings: Settings, embedder: Embedder | None = None,
                 chunk_sizes: ChunkSizes = DEFAULT_SIZES) -> None:
        self.root = root.resolve()
        self.settings = settings
        self.chunk_sizes = chunk_sizes  # a tuning knob (bench/tune.py), not a user setting
        self.dir = index_dir_for(self.root)
        private_dir(self.dir)
        self.embedder = embedder or create_embedder(settings.embedding)
        self.state = IndexState()
        # What went wrong with the index on disk and was repaired, for the user to be told.
        self.notices: list[str] = []
        # Serialises writers (full sync, file events, embedding upserts) of this folder.
        self.write_lock = threading.RLock()
        # Held while state.db is reopened, so that status never reads a closed database.
        self._state_lock = threading.Lock()
        self._open_state()
        self._store: Store | None = None
        self._key: str | None = None  # the open collection's model key; None when provisional
        self._store_lock = threading.Lock()
        self._store_failure: tuple[float, StoreError] | None = None
        self._write_meta()

    def _open_state(self) -> None:
        state = open_state(self.dir / "state.db", self._notice)
        self.files, self.cache, self.symbols = state.files, state.cache, state.symbols

    def reopen_if_deleted(self) -> bool:
        """When the index directory was deleted under an open index (a cleared cache), start
        over in a new one. Called at the start of a full sync, which then rebuilds it."""
        if (self.dir / "state.db").exists():
            return False
        with self.write_lock, self._state_lock, self._store_lock:
            if (self.dir / "state.db").exists():
                return False
            if self._store is not None:
                self._store.close()
                if not self.settings.store.uri:
                    store_uri.release_local(self.store_uri)
                self._store = None
            self.files.close()
            self.cache.close()
            self.symbols.close()
            private_dir(self.dir)
            self._open_state()
            self._write_meta()
        self._notice(f"the index directory {self.dir} was deleted while in use; it is rebuilt")
        return True

    def _notice(self, message: str) -> None:
        log.warning("%s: %s", self.root, message)
        self.notices.append(message)

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
        """Opened on first use: the embedding model may have to be asked for its dimension.

        The snapshot and the collection must describe the same rows: a collection created
        now (deleted, rebuilt or a new server) means no file is indexed yet, and snapshot
        rows started over (new model or store, lost state.db) mean old rows must go.

        When the dimension cannot be learned (a rejected key, an endpoint down, a model that
        does not load), a provisional collection holds the chunks without vectors, so that
        keyword search works; ``vector_store`` moves them into the model's own collection
        once the model answers."""
        with self._store_lock:
            if self._store is None:
                try:
                    self._store, self._key = self._open_bound()
                except StoreError as exc:
                    self._store_failure = (time.monotonic(), exc)
                    raise
                self._store_failure = None
            return self._store

    @property
    def vector_key(self) -> str | None:
        """The model key of the open collection's vectors; None while it is provisional
        (chunks and keywords only, no vector may be written or searched)."""
        self.store  # noqa: B018 (opens it)
        return self._key

    def vector_store(self) -> tuple[Store, str]:
        """The store and its model key, for writing vectors. A provisional collection is first
        replaced by the model's own, its chunks moved across as they are (no file is read
        again); raises EmbeddingError while the model still cannot say its dimension."""
        store = self.store
        if self._key is not None:
            return store, self._key
        key = model_key(self.embedder)  # the provider may still refuse: EmbeddingError
        # Writers hold the write lock: no row goes into the provisional collection while its
        # rows move, and none is built for it afterwards (write_files checks the store).
        with self.write_lock:
            provisional = self.store
            if self._key is not None:  # upgraded meanwhile
                return provisional, self._key
            real = self._adopt(key, provisional)
            with self._store_lock:
                self._store, self._key = real, key
            try:
                provisional.drop()
            except StoreError as exc:  # an empty leftover; dropped at the next open
                log.warning("cannot drop the provisional collection: %s", exc)
            provisional.close()
        return real, key

    def _fingerprint(self) -> str:
        """Where the rows are, and what they hold: redaction decides that too, so turning it on
        or off (or new detectors) re-reads every file, and no chunk keeps a secret it should not."""
        store = hashlib.sha256(self.store_uri.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"{store}|redact:{redaction.RULES_VERSION if self.settings.index.redact_secrets else 'off'}"

    def _open_bound(self) -> tuple[Store, str | None]:
        """Open this model's collection (or the provisional one) and bind the snapshot to it."""
        bound_pending = self.files.bound_model() == f"{PROVISIONAL_KEY}|store:{self._fingerprint()}"
        try:
            key: str | None = model_key(self.embedder)
        except EmbeddingError as exc:
            key = self._remembered_key()
            if key is not None:  # indexed with this model before: its collection, vectors and all
                # Its answers, once it answers, must fit that collection.
                self.embedder.assume_dimension(int(key.rsplit(":", 1)[1]))
                log.warning("%s: %s; new chunks wait for vectors until it answers", self.root, exc)
                return self._bind(self._open_store(key, int(key.rsplit(":", 1)[1])), key), key
            log.warning("%s: %s; chunks are stored without vectors until it answers", self.root, exc)
        if key is None:
            return self._bind(self._open_store(PROVISIONAL_KEY, PROVISIONAL_DIMENSION), PROVISIONAL_KEY), None
        if bound_pending:  # the chunks wait in a provisional collection of an earlier run
            provisional = self._open_store(PROVISIONAL_KEY, PROVISIONAL_DIMENSION)
            if not provisional.created:
                try:
                    store = self._adopt(key, provisional)
                    provisional.drop()
                finally:
                    provisional.close()
                return store, key
            provisional.drop()  # it was lost: the snapshot starts over below
            provisional.close()
        store = self._bind(self._open_store(key, self.embedder.dimension), key)
        try:
            store.drop_collection(collection_name(self.root, PROVISIONAL_KEY))  # a leftover of a crash
        except StoreError as exc:
            log.info("cannot drop a leftover provisional collection: %s", exc)
        return store, key

    def _remembered_key(self) -> str | None:
        """The key the snapshot is bound to when it is this model's in this store: the model
        answered before (the dimension is part of the key) and cannot be asked now."""
        bound = self.files.bound_model() or ""
        prefix = f"{self.embedder.provider}:{self.embedder.model}:"
        key, _, store = bound.rpartition("|store:")
        dimension = key[len(prefix):]
        if key.startswith(prefix) and dimension.isdigit() and int(dimension) > 0 and store == self._fingerprint():
            return key
        return None

    def _bind(self, store: Store, key: str) -> Store:
        started_over = self.files.bind_model(f"{key}|store:{self._fingerprint()}")
        if store.created and not started_over and self.files.count():
            self._notice(f"the vector store at {store_uri.display_uri(self.store_uri)} held nothing for "
                         f"the {self.files.count()} files indexed before; they are indexed again")
            self.files.clear()
            self.symbols.clear()
        elif started_over and not store.created and store.count():
            store.recreate()  # rows of an earlier run with this model may be of deleted files
        return store

    def _adopt(self, key: str, provisional: Store) -> Store:
        """The model's own collection, holding the provisional collection's chunks (same ids,
        content and keywords, vectors pending), with the snapshot bound to it and kept."""
        store = self._open_store(key, self.embedder.dimension)
        try:
            if not store.created and store.count():
                store.recreate()  # rows of an earlier run of this model; the provisional ones are current
            batch: list[dict[str, Any]] = []
            moved = 0
            for r in provisional.iter_rows([*store_mod.OUTPUT_FIELDS, "search_text"]):
                batch.append(store.row(id=r["id"], path=r["path"], language=r["language"],
                                       start_line=int(r["start_line"]), end_line=int(r["end_line"]),
                                       symbol=r["symbol"], kind=int(r["kind"]), content=r["content"],
                                       search_text=r["search_text"], vector=None))
                if len(batch) >= ADOPT_BATCH:
                    store.replace(Deletion(), batch)
                    moved, batch = moved + len(batch), []
            if batch:
                store.replace(Deletion(), batch)
                moved += len(batch)
            store.flush()
        except BaseException:
            store.close()
            raise
        self.files.rebind_model(f"{key}|store:{self._fingerprint()}")
        log.info("%s: the embedding model answers; %d chunks moved to its collection, to be embedded",
                 self.root, moved)
        return store

    def _open_store(self, key: str, dimension: int) -> Store:
        """Open the store; a damaged Milvus Lite store of our own is moved aside and rebuilt."""
        token = os.environ.get(self.settings.store.token_env) if self.settings.store.token_env else None
        name = collection_name(self.root, key)
        try:
            return Store(self.store_uri, name, dimension, token)
        except StoreLocked:
            raise
        except StoreError as exc:
            own = self.dir / "milvus.db"
            if self.settings.store.uri or not (own.exists() or own.is_symlink()):
                raise  # a store the user configured is theirs to repair
            aside = self.dir / "milvus.db.damaged"
            self._notice(f"the vector store could not be opened ({exc}); it was moved to {aside} and is rebuilt")
            store_uri.release_local(str(own))
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                aside.unlink(missing_ok=True)
            os.replace(own, aside)
            return Store(self.store_uri, name, dimension, token)

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

    def status(self, open_store: bool = True) -> IndexStatus:
        """What is indexed. The server polls it with ``open_store=False``: opening a store can
        wait on a model or a remote server, and a poll must answer at once."""
        with self._state_lock:
            redacted = self.files.redactions()
            error = self.state.last_error
            try:
                failure = self._store_failure
                if self._store is None and failure is not None and time.monotonic() - failure[0] < STORE_RETRY_SECONDS:
                    raise failure[1]  # status is polled: do not knock on a locked or down store each time
                if self._store is not None and self.state.state == "indexing" or self._store is None and not open_store:
                    # Counted by the sync itself: exact for chunks of indexed files, an estimate for pending.
                    chunks, pending = self.files.chunk_total(), self.state.pending_chunks
                else:
                    chunks, pending = self.store.count(), self.store.count_pending()
            except Exception as exc:  # status must answer even when the store is down
                chunks, pending, error = 0, 0, error or str(exc)
            return IndexStatus(
                root=self.root, state=self.state.state, files=self.state.files or self.files.count(),
                indexed_files=self.files.count(done_only=True), symbols=len(self.symbols),
                redactions=sum(n for n, _ in redacted.values()), redacted_files=len(redacted),
                embedding=self.embedder.describe(), store_uri=store_uri.display_uri(self.store_uri),
                index_dir=self.dir, chunks=chunks, pending_chunks=pending, last_error=error)

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
                self.files.clear()
                self.symbols.clear()
                self.state = IndexState()

    def writable_store(self) -> Store:
        """The store once Milvus is open. A store that answered from its saved ChunkIndex and
        then found Milvus Lite unreadable is opened again here, which rebuilds it (with the
        same notice as damage found at open)."""
        store = self.store
        store.wait_open()
        if store.damaged is None:
            return store
        with self._store_lock:
            if self._store is store:
                self._store = None
                store.close()
        return self.store

    def checkpoint(self) -> None:
        """Save what lets the next open start fast (the store's in-memory chunk index)."""
        with self._store_lock:
            store = self._store
        if store is not None:
            try:
                store.checkpoint()
            except OSError as exc:  # the next open reads the store instead: slower, not wrong
                log.warning("%s: cannot save the chunk index: %s", self.root, exc)

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None
        self.files.close()
        self.cache.close()
        self.symbols.close()
        self.embedder.close()


def remove_index_dir(root: Path) -> None:
    shutil.rmtree(index_dir_for(root.resolve()), ignore_errors=True)
