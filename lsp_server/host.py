"""An owned folder at work: its index and the threads that keep it fresh and answer from it.

Whichever face owns a folder (language server, MCP server or CLI) holds one FolderHost,
and followers reach the same object through the owner's socket, so every face answers
from one implementation. Each folder has two single-thread lanes, one for full syncs and
one for file events, so a saved file is searchable within a second even while a long first
index runs (both write under ``index.write_lock``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import attrs
from watchdog.observers.api import BaseObserver

from . import redaction, watching
from . import search as engine
from .errors import EmbeddingError, StoreError
from .index import IndexStatus, WorkspaceIndex
from .query import Query, Result
from .settings import Settings
from .symbol_index import MAX_RESULTS as MAX_SYMBOLS
from .symbols import Symbol
from .sync import Cancelled, Progress, SyncStats, sync_paths, sync_workspace
from .verify import Differences, verify

log = logging.getLogger(__name__)

# File events closer together than this become one re-index (a git checkout is a burst).
COALESCE_SECONDS = 0.2
# An editor's open or save names one file the user is looking at: wait only long enough to
# batch a "save all".
SAVE_COALESCE_SECONDS = 0.02
# Niceness of the full-sync lane. The threads it starts inherit it: the encoder, torch's
# workers, the vector writer. Searches and saved files go first when the cores are busy.
SYNC_NICENESS = 10


def _background() -> None:
    """Lower this thread's priority (Linux sets it per thread; elsewhere it would be the whole
    process's, so it is left alone). With autogroups (the kernel's default) niceness only
    ranks threads of the same session: indexing yields to this server's requests, while
    other programs' share of the cores stays as it was."""
    if sys.platform.startswith("linux"):
        try:
            me = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + SYNC_NICENESS))
        except OSError as exc:  # a sandbox may refuse; indexing then runs at normal priority
            log.info("cannot lower the sync lane's priority: %s", exc)


class FolderHost:
    """One folder's index, its sync and edit lanes, its watcher and its pending edits."""

    def __init__(self, index: WorkspaceIndex, watch: bool = False) -> None:
        self.index = index
        self.root = index.root
        # A full sync is queued or running.
        self.syncing = False
        self.sync_cancel = threading.Event()  # the current sync's flag
        self.closing = threading.Event()
        self.sync_lane = ThreadPoolExecutor(1, "cc-sync", initializer=_background)
        self.edit_lane = ThreadPoolExecutor(1, "cc-edits")
        self._pending: set[str] = set()  # paths waiting for the coalescing timer
        self._flush: threading.Timer | None = None
        self._flush_at = 0.0
        self._lock = threading.Lock()
        self.observer: BaseObserver | None = watching.watch(self.root, self.changed) if watch else None

    @classmethod
    def open(cls, root: Path, settings: Settings, watch: bool = False, warm: bool = True) -> FolderHost:
        """Open the folder's index (state.db now, the store on first use) and, with ``warm``,
        load the model in the background while the keyword index is built."""
        index = WorkspaceIndex(root, settings)
        if warm:
            index.embedder.warm_up()
        return cls(index, watch)

    # -- writing

    def start_sync(self, force: bool = False, progress: Progress | None = None,
                   cancelled: Cancelled | None = None) -> Future[SyncStats] | None:
        """Queue a full sync; None when one is already queued or running."""
        with self._lock:
            if self.syncing or self.closing.is_set():
                return None
            self.syncing = True
            cancel = self.sync_cancel = threading.Event()

        def stop() -> bool:
            return cancel.is_set() or self.closing.is_set() or (cancelled is not None and cancelled())

        def run() -> SyncStats:
            try:
                stats = sync_workspace(self.index, progress, stop, force or self.index.symbols.needs_rebuild)
                if not stats.error and not stats.cancelled:
                    self.index.checkpoint()  # a restart after a crash reads it, not every row
                return stats
            except Exception as exc:  # the engine catches store and I/O errors; anything else is a bug to log
                log.exception("indexing %s failed", self.root)
                return SyncStats(error=str(exc))
            finally:
                self.syncing = False

        try:
            return self.sync_lane.submit(run)
        except RuntimeError:  # closed meanwhile
            self.syncing = False
            return None

    def changed(self, rel_paths: Sequence[str], delay: float = COALESCE_SECONDS) -> None:
        """Queue changed paths; the first of a burst starts the timer that flushes them all, and
        a later event with a shorter delay (a save during a checkout) brings the flush forward."""
        if self.closing.is_set():
            return
        with self._lock:
            self._pending.update(rel_paths)
            due = time.monotonic() + delay
            if self._flush is not None and self._flush_at > due:
                self._flush.cancel()
                self._flush = None
            if self._flush is None:
                self._flush_at = due
                self._flush = threading.Timer(delay, self._flush_pending)
                self._flush.daemon = True
                self._flush.start()

    def _flush_pending(self) -> None:
        with self._lock:
            paths, self._pending, self._flush = sorted(self._pending), set(), None
        if paths and not self.closing.is_set():
            try:
                self.edit_lane.submit(self._reindex_paths, paths)
            except RuntimeError:  # closed meanwhile
                pass

    def _reindex_paths(self, rel_paths: list[str]) -> None:
        """Runs on the edit lane: re-read changed files, drop deleted ones."""
        try:
            stats = sync_paths(self.index, watching.expand(self.index, rel_paths))
        except (StoreError, EmbeddingError) as exc:  # left pending: the next full sync catches up
            log.warning("re-indexing %d changed files failed: %s", len(rel_paths), exc)
            return
        except Exception:  # one bad batch must not stop later ones
            log.exception("re-indexing %d changed files failed", len(rel_paths))
            return
        if stats.changed_files or stats.deleted_files:
            log.info("re-indexed %d changed and %d deleted files", stats.changed_files, stats.deleted_files)

    def reconfigure(self, settings: Settings) -> bool:
        """Take new settings for the same model and store (others need a new index); True when
        the index rules changed, so a full sync is due."""
        old, self.index.settings = self.index.settings, settings
        return old.index != settings.index

    def clear(self) -> None:
        """Stop a running sync, then forget the folder's index (on the sync lane, after the sync)."""
        self.sync_cancel.set()
        self.sync_lane.submit(self.index.clear).result()

    # -- reading

    def search(self, query: Query, patient: bool = False) -> tuple[list[Result], bool]:
        """Results and whether they may be incomplete (still indexing, or words only while the
        model loads: an editor's query answers now; a ``patient`` one, a command's, waits for
        the model). Raises StoreError or EmbeddingError when nothing could be searched."""
        index = self.index
        used = query
        if query.mode == "hybrid" and not patient and not index.embedder.ready:
            used = attrs.evolve(query, mode="keyword")  # the model is still loading: words now, meaning soon
        partial = (self.syncing or used.mode != query.mode or index.state.pending_chunks > 0
                   or (used.mode == "hybrid" and index.vector_key is None))  # words only: no vectors yet
        results = engine.answer(index, used)
        return results, partial

    def similar(self, rel: str, lines: list[str], start_line: int, end_line: int, limit: int) -> list[Result]:
        """Code like lines start_line..end_line (1-based, inclusive) of a document's lines. The
        whole document is redacted first, as indexing does: the lines go to the embedder, maybe
        a remote one, and a key's body is only known as one by the header above it."""
        if self.index.settings.index.redact_secrets:
            lines = redaction.redact_lines(lines, rel)
        text = "".join(lines[start_line - 1:end_line])
        return engine.similar(self.index, rel, text, start_line, end_line, limit)

    def symbols(self, query: str, limit: int = MAX_SYMBOLS) -> list[tuple[str, Symbol, float]]:
        return self.index.symbols.search(query, limit)

    def outline(self, rel: str) -> list[Symbol]:
        """The symbols of one file as last indexed."""
        return self.index.symbols.symbols_in(rel)

    def status(self) -> IndexStatus:
        status = self.index.status(open_store=False)
        return attrs.evolve(status, state="indexing") if self.syncing else status

    def verify(self) -> Differences:
        """Compare the index with the files, after the running sync and edits."""
        return self.sync_lane.submit(lambda: self.edit_lane.submit(verify, self.index).result()).result()

    # -- closing

    def close(self) -> None:
        """Stop syncs between batches, wait for the lanes, close the index."""
        self.closing.set()
        self.sync_cancel.set()
        with self._lock:
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
        if self.observer is not None:
            self.observer.stop()
        self.sync_lane.shutdown(wait=True, cancel_futures=True)
        self.edit_lane.shutdown(wait=True, cancel_futures=True)
        self.index.close()

