"""The language server: thin LSP handlers over the engine, one WorkspaceIndex per folder.

The event loop only parses, validates and answers; engine work runs on threads. Each
folder has two single-thread lanes, one for full syncs and one for file events, so a
saved file is searchable within a second even while a long first index runs (both write
under ``index.write_lock``). Searches share a pool, so a cancelled request that has not
started never runs. docs/protocol.md describes the custom requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, BinaryIO

import attrs
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import from_fs_path, to_fs_path
from watchdog.observers.api import BaseObserver

from . import protocol, redaction, watching
from . import search as engine
from .embedding import EmbeddingError
from .index import WorkspaceIndex
from .search import InvalidInput
from .settings import Settings, merge, parse
from .store import StoreError, display_uri
from .symbols import MAX_RESULTS as MAX_SYMBOLS
from .symbols import Symbol, document_symbols
from .sync import SyncStats, sync_paths, sync_workspace

log = logging.getLogger(__name__)

CONFIG_SECTION = "codeContext"
# File events closer together than this become one re-index (a git checkout is a burst).
COALESCE_SECONDS = 0.2
# An editor's open or save names one file the user is looking at: wait only long enough to
# batch a "save all".
SAVE_COALESCE_SECONDS = 0.02
SEARCH_THREADS = 4

try:
    __version__ = version("code-context-lsp")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"


@attrs.define(eq=False)
class Folder:
    """A workspace folder, its index and the threads that write to it."""

    uri: str
    path: Path  # as the client spells it, so result URIs match the client's
    root: Path  # resolved: the boundary no read may cross
    index: WorkspaceIndex | None = None
    error: str | None = None  # why the index could not be opened
    # A full sync is queued or running. True from the start: the first sync is on its way.
    syncing: bool = True
    sync_cancel: threading.Event = attrs.Factory(threading.Event)  # the current sync's flag
    closing: threading.Event = attrs.Factory(threading.Event)
    sync_lane: ThreadPoolExecutor = attrs.Factory(lambda: ThreadPoolExecutor(1, "cc-sync"))
    edit_lane: ThreadPoolExecutor = attrs.Factory(lambda: ThreadPoolExecutor(1, "cc-edits"))
    pending: set[str] = attrs.Factory(set)  # paths waiting for the coalescing timer
    flush: asyncio.TimerHandle | None = None
    observer: BaseObserver | None = None

    @classmethod
    def from_uri(cls, uri: str) -> Folder | None:
        fs_path = to_fs_path(uri)
        if not fs_path or not os.path.isabs(fs_path):
            return None
        return cls(uri, Path(fs_path), Path(fs_path).resolve())

    def uri_of(self, rel: str) -> str:
        return from_fs_path(str(self.path / rel)) or ""


class _Protocol(LanguageServerProtocol):
    def get_message_type(self, method: str) -> type[Any] | None:
        """codeContext/* params arrive raw, for protocol.structure to validate strictly."""
        return protocol.RawRequest if method in protocol.METHODS else super().get_message_type(method)


class CodeContextServer(LanguageServer):
    """Holds the state the handlers share; the handlers are the functions below."""

    def __init__(self) -> None:
        super().__init__("code-context", __version__, protocol_cls=_Protocol)
        self.folders: dict[str, Folder] = {}
        self.init_options: Any = None
        self.client_settings: Any = None  # the codeContext section of workspace/configuration
        self.settings = Settings()
        self.reported_bad_settings: list[str] = []
        self.settings_lock = asyncio.Lock()
        self.searches = ThreadPoolExecutor(SEARCH_THREADS, "cc-search")
        self.loop: asyncio.AbstractEventLoop | None = None  # for logging from other threads
        self.use_watchdog = True
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run in the background, keeping a reference so the task is not collected."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def supports(self, *path: str) -> bool:
        """Whether a client capability, e.g. ("window", "work_done_progress"), is set."""
        node: Any = self.client_capabilities
        for name in path:
            node = getattr(node, name, None)
        return bool(node)


SERVER = CodeContextServer()


# -- helpers the handlers share


@contextlib.contextmanager
def _invalid_params() -> Iterator[None]:
    """Bad client input is a -32602 naming the field, never an internal error."""
    try:
        yield
    except InvalidInput as exc:
        raise JsonRpcInvalidParams(str(exc)) from None


def _tell(ls: CodeContextServer, kind: lsp.MessageType, message: str) -> None:
    ls.window_show_message(lsp.ShowMessageParams(type=kind, message=f"Code Context: {message}"))


def _locate(ls: CodeContextServer, uri: str) -> tuple[Folder, str] | None:
    """The folder holding a file URI and its relative path; None outside every folder.
    Symlinks and `..` are resolved first, so nothing outside can be reached through them."""
    fs_path = to_fs_path(uri)
    if not fs_path or not os.path.isabs(fs_path):
        return None
    try:
        path = Path(fs_path).resolve()
    except (OSError, RuntimeError):
        return None
    inside = [f for f in ls.folders.values() if f.root in path.parents]
    if not inside:
        return None
    folder = max(inside, key=lambda f: len(f.root.parts))  # nested folders: the innermost
    return folder, path.relative_to(folder.root).as_posix()


def _folders(ls: CodeContextServer, uri: str | None) -> list[Folder]:
    if uri is None:
        return list(ls.folders.values())
    wanted = Folder.from_uri(uri)
    found = [f for f in ls.folders.values() if wanted is not None and f.root == wanted.root]
    if not found:
        raise InvalidInput("workspaceFolder", f"{uri} is not an open workspace folder")
    return found


def _limit(value: int | None, default: int) -> int:
    limit = default if value is None else value
    if not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be an integer from 1 to 100")
    return limit


def _result(folder: Folder, r: engine.Result) -> protocol.SearchResult:
    # Result lines are 1-based inclusive; an LSP range is 0-based, end exclusive.
    rng = protocol.Range(protocol.Position(r.start_line - 1, 0), protocol.Position(r.end_line, 0))
    return protocol.SearchResult(folder.uri_of(r.path), rng, r.score, r.language, r.content, r.symbol, r.kind)


def _response(hits: list[tuple[Folder, engine.Result]], partial: bool) -> Any:
    return protocol.unstructure(protocol.SearchResponse([_result(f, r) for f, r in hits], partial))


def _search_folders(folders: list[Folder], params: protocol.SearchParams, query: str, limit: int, mode: str,
                    stop: threading.Event) -> tuple[list[tuple[Folder, engine.Result]], bool]:
    """Search each folder in turn and merge by score; stops between folders once cancelled."""
    hits: list[tuple[Folder, engine.Result]] = []
    partial = False
    errors: list[str] = []
    for folder in folders:
        if stop.is_set():
            break
        index = folder.index
        if index is None:
            partial = partial or folder.error is None
            continue
        folder_mode = mode
        if mode == "hybrid" and not getattr(index.embedder, "ready", True):
            folder_mode = "keyword"  # the model is still loading: words now, meaning in a few seconds
        try:
            partial = partial or folder.syncing or folder_mode != mode or index.state.pending_chunks > 0
            hits += [(folder, r) for r in engine.search(index, query, limit, folder_mode, params.include or (),
                                                         params.exclude or (), params.languages or ())]
        except (StoreError, EmbeddingError) as exc:
            log.warning("search in %s failed: %s", folder.path, exc)
            errors.append(str(exc))
            partial = True
    if errors and not hits:
        raise JsonRpcInternalError(errors[0])
    hits.sort(key=lambda h: h[1].score, reverse=True)
    return hits[:limit], partial


def _document_lines(ls: CodeContextServer, uri: str, path: Path) -> list[str]:
    """The open document's text (unsaved edits included), else the regular file on disk."""
    doc = ls.workspace.text_documents.get(uri)
    if doc is not None:
        return doc.lines
    if not path.is_file():  # never block on a FIFO or read a device
        raise InvalidInput("uri", "is not a readable file")
    return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)


def _status(ls: CodeContextServer, folder: Folder) -> protocol.FolderStatus:
    index = folder.index
    if index is None:
        emb = ls.settings.embedding
        return protocol.FolderStatus(folder.uri, "error" if folder.error else "indexing", 0, 0, 0, 0, 0, 0,
                                     protocol.EmbeddingInfo(emb.provider, emb.model or "", emb.dimensions or 0),
                                     protocol.StoreInfo(display_uri(ls.settings.store.uri or "")), folder.error)
    info = index.status(open_store=False)
    emb = info["embedding"]
    return protocol.FolderStatus(
        folder.uri, "indexing" if folder.syncing else info["state"], info["files"], info["indexedFiles"],
        info["chunks"], info["pendingChunks"], info["redactions"], info["redactedFiles"],
        protocol.EmbeddingInfo(str(emb["provider"]), str(emb["model"]), int(emb.get("dimension") or 0),
                               str(emb["baseUrl"]) if emb.get("baseUrl") else None),
        protocol.StoreInfo(info["store"]["uri"]), info.get("lastError"))


def _workspace_symbols(folders: list[Folder], query: str) -> list[lsp.WorkspaceSymbol]:
    hits = [(score, folder, path, sym) for folder in folders if folder.index is not None
            for path, sym, score in folder.index.symbols.search(query, MAX_SYMBOLS)]
    hits.sort(key=lambda h: h[0], reverse=True)
    return [_workspace_symbol(folder, path, sym) for _, folder, path, sym in hits[:MAX_SYMBOLS]]


def _workspace_symbol(folder: Folder, path: str, sym: Symbol) -> lsp.WorkspaceSymbol:
    start_line, start_char, end_line, end_char = sym.range
    location = lsp.Location(folder.uri_of(path),
                            lsp.Range(lsp.Position(start_line, start_char), lsp.Position(end_line, end_char)))
    return lsp.WorkspaceSymbol(name=sym.name, kind=lsp.SymbolKind(sym.kind), location=location,
                               container_name=sym.container)


# -- settings


def _merged_settings(ls: CodeContextServer) -> Settings:
    """initializationOptions, then the client's configuration: the later source wins per key.
    Bad keys are named in a warning and fall back to their defaults."""
    raw: dict[str, Any] = {}
    bad: list[str] = []
    for name, source in (("initializationOptions", ls.init_options), ("configuration", ls.client_settings)):
        if isinstance(source, dict):
            raw = merge(raw, source)
        elif source is not None:
            bad.append(f"{name} (expected an object)")
    settings, bad_keys = parse(raw)
    bad += bad_keys
    if bad and bad != ls.reported_bad_settings:  # once, not on every configuration change
        _tell(ls, lsp.MessageType.Warning, f"invalid settings ignored, defaults used: {', '.join(bad)}")
    ls.reported_bad_settings = bad
    return settings


async def _pull_configuration(ls: CodeContextServer) -> None:
    if not ls.supports("workspace", "configuration"):
        return
    try:
        items = await ls.workspace_configuration_async(
            lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section=CONFIG_SECTION)]))
        ls.client_settings = items[0] if items else None
    except Exception as exc:  # a client that fails this request still gets a server
        log.warning("workspace/configuration failed: %s", exc)


async def _reconfigure(ls: CodeContextServer) -> None:
    """Apply new settings: a new model or store means new indexes; new index rules, a resync."""
    async with ls.settings_lock:
        old, new = ls.settings, _merged_settings(ls)
        ls.settings = new
        for folder in list(ls.folders.values()):
            # Redaction decides what the stored rows hold: like a new model, a new index.
            if (old.embedding, old.store, old.index.redact_secrets) != (
                    new.embedding, new.store, new.index.redact_secrets):
                await _reopen(ls, folder)
            elif folder.index is not None:
                folder.index.settings = new
                if old.index != new.index and not folder.syncing:
                    folder.syncing = True
                    ls.spawn(_index(ls, folder))


# -- folder lifecycle


async def _open(ls: CodeContextServer, folder: Folder) -> None:
    """Open a folder's index, watch it if the client cannot, and index it."""
    try:
        index = await asyncio.to_thread(WorkspaceIndex, folder.root, ls.settings)
    except Exception as exc:  # e.g. no API key for the openai provider: the folder reports it
        folder.error, folder.syncing = str(exc), False
        log.error("cannot open the index of %s: %s", folder.path, exc)
        _tell(ls, lsp.MessageType.Error, str(exc))
        return
    if folder.closing.is_set():  # removed or reconfigured while opening
        await asyncio.to_thread(index.close)
        return
    folder.index = index
    warm_up = getattr(index.embedder, "warm_up", None)
    if warm_up is not None:  # load the model while the keyword index is built
        warm_up()
    if ls.use_watchdog:
        on_paths = partial(asyncio.get_running_loop().call_soon_threadsafe, _schedule, ls, folder)
        folder.observer = await asyncio.to_thread(watching.watch, folder.root, on_paths)
    await _index(ls, folder)


async def _close(folder: Folder) -> None:
    folder.closing.set()
    folder.sync_cancel.set()
    if folder.flush is not None:
        folder.flush.cancel()
    await asyncio.to_thread(_release, folder)


def _release(folder: Folder) -> None:
    """Blocking part of closing: wait for the lanes, then close the index."""
    if folder.observer is not None:
        folder.observer.stop()
    folder.sync_lane.shutdown(wait=True, cancel_futures=True)
    folder.edit_lane.shutdown(wait=True, cancel_futures=True)
    if folder.index is not None:
        folder.index.close()


async def _reopen(ls: CodeContextServer, folder: Folder) -> None:
    fresh = Folder(folder.uri, folder.path, folder.root)
    ls.folders[folder.uri] = fresh
    await _close(folder)
    ls.spawn(_open(ls, fresh))


async def _index(ls: CodeContextServer, folder: Folder, force: bool = False) -> None:
    """A full sync on the folder's sync lane, shown as work-done progress the user can cancel.
    The caller has set ``folder.syncing``."""
    index = folder.index
    assert index is not None
    loop = asyncio.get_running_loop()
    cancel = folder.sync_cancel = threading.Event()
    token = f"codeContext/index/{uuid.uuid4()}"
    progress = ls.work_done_progress
    shown = await _begin_progress(ls, token, f"Indexing {folder.path.name}")
    last = 0

    def report(done: int, total: int, message: str) -> None:
        # Files fill the first half of the bar and embedding the second, so it never goes back.
        nonlocal last
        share = done / total if total else 1.0
        percent = int(50 + 50 * share) if message.startswith("embedding") else int(50 * share)
        if shown and percent > last:
            last = percent
            loop.call_soon_threadsafe(progress.report, token,
                                      lsp.WorkDoneProgressReport(message=message, percentage=percent))

    def cancelled() -> bool:
        user = progress.tokens.get(token)
        return cancel.is_set() or folder.closing.is_set() or (user is not None and user.cancelled())

    stats = SyncStats(cancelled=True)  # what is reported if the task itself is cancelled
    try:
        stats = await loop.run_in_executor(
            folder.sync_lane, partial(sync_workspace, index, report, cancelled, force or index.symbols.needs_rebuild))
    except Exception as exc:  # the engine catches store and I/O errors; anything else is a bug to log
        log.exception("indexing %s failed", folder.path)
        stats = SyncStats(error=str(exc))
    finally:
        folder.syncing = False
        summary = ("cancelled" if stats.cancelled else f"failed: {stats.error}" if stats.error else
                   f"{stats.files} files, {stats.changed_files} changed, {stats.seconds:.1f} s")
        log.info("indexing %s: %s", folder.path, summary)
        if shown:
            progress.end(token, lsp.WorkDoneProgressEnd(message=summary))
            progress.tokens.pop(token, None)
        if stats.error and not stats.cancelled:
            _tell(ls, lsp.MessageType.Error, f"indexing {folder.path.name} {summary}")
        while index.notices:  # repairs the engine made, e.g. a damaged store rebuilt
            _tell(ls, lsp.MessageType.Warning, index.notices.pop(0))


async def _begin_progress(ls: CodeContextServer, token: str, title: str) -> bool:
    if not ls.supports("window", "work_done_progress"):
        return False
    try:
        await ls.work_done_progress.create_async(token)
    except Exception as exc:  # the client refused: index without a progress bar
        log.info("no progress for %s: %s", title, exc)
        return False
    ls.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0))
    return True


def _schedule(ls: CodeContextServer, folder: Folder, rel_paths: list[str],
              delay: float = COALESCE_SECONDS) -> None:
    """Queue changed paths; the first of a burst starts the timer that flushes them all, and
    a later event with a shorter delay (a save during a checkout) brings the flush forward."""
    if folder.index is None or folder.closing.is_set():
        return
    folder.pending.update(rel_paths)
    loop = asyncio.get_running_loop()
    if folder.flush is not None and folder.flush.when() > loop.time() + delay:
        folder.flush.cancel()
        folder.flush = None
    if folder.flush is None:
        folder.flush = loop.call_later(delay, _flush, folder)


def _flush(folder: Folder) -> None:
    paths, folder.pending, folder.flush = sorted(folder.pending), set(), None
    if folder.index is not None and not folder.closing.is_set():
        folder.edit_lane.submit(_reindex_paths, folder.index, paths)


def _reindex_paths(index: WorkspaceIndex, rel_paths: list[str]) -> None:
    """Runs on the edit lane: re-read changed files, drop deleted ones."""
    try:
        stats = sync_paths(index, watching.expand(index, rel_paths))
    except (StoreError, EmbeddingError) as exc:  # left pending: the next full sync catches up
        log.warning("re-indexing %d changed files failed: %s", len(rel_paths), exc)
        return
    except Exception:  # one bad batch must not stop later ones
        log.exception("re-indexing %d changed files failed", len(rel_paths))
        return
    if stats.changed_files or stats.deleted_files:
        log.info("re-indexed %d changed and %d deleted files", stats.changed_files, stats.deleted_files)


def _touch(ls: CodeContextServer, uri: str, delay: float = COALESCE_SECONDS) -> None:
    found = _locate(ls, uri)
    if found is not None:
        folder, rel = found
        _schedule(ls, folder, [rel], delay)


async def _watch_files(ls: CodeContextServer) -> None:
    """Ask the client to watch files; without dynamic registration, watchdog does it."""
    if not ls.supports("workspace", "did_change_watched_files", "dynamic_registration"):
        return
    options = lsp.DidChangeWatchedFilesRegistrationOptions(watchers=[lsp.FileSystemWatcher(glob_pattern="**/*")])
    try:
        await ls.client_register_capability_async(lsp.RegistrationParams(registrations=[
            lsp.Registration(id=str(uuid.uuid4()), method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                             register_options=options)]))
        ls.use_watchdog = False
    except Exception as exc:
        log.warning("the client refused to watch files, watching them here: %s", exc)


# -- lifecycle handlers


@SERVER.feature(lsp.INITIALIZE)
def initialize(ls: CodeContextServer, params: lsp.InitializeParams) -> None:
    """Remember folders and options; nothing is opened before the client's configuration is in."""
    ls.loop = asyncio.get_running_loop()
    ls.init_options = params.initialization_options
    uris = [f.uri for f in params.workspace_folders or []]
    if not uris and (root := params.root_uri or (params.root_path and from_fs_path(params.root_path))):
        uris = [root]
    for uri in uris:
        if (folder := Folder.from_uri(uri)) is not None:
            ls.folders[uri] = folder


@SERVER.feature(lsp.INITIALIZED)
async def initialized(ls: CodeContextServer, params: lsp.InitializedParams) -> None:
    async with ls.settings_lock:
        await _pull_configuration(ls)
        ls.settings = _merged_settings(ls)
        await _watch_files(ls)
        for folder in ls.folders.values():
            ls.spawn(_open(ls, folder))


@SERVER.feature(lsp.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
async def did_change_workspace_folders(ls: CodeContextServer, params: lsp.DidChangeWorkspaceFoldersParams) -> None:
    for removed in params.event.removed:
        if (folder := ls.folders.pop(removed.uri, None)) is not None:
            await _close(folder)
    for added in params.event.added:
        if added.uri not in ls.folders and (folder := Folder.from_uri(added.uri)) is not None:
            ls.folders[added.uri] = folder
            ls.spawn(_open(ls, folder))


@SERVER.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: CodeContextServer, params: lsp.DidChangeConfigurationParams) -> None:
    """Take the codeContext section when the notification carries it, else pull it."""
    pushed = params.settings.get(CONFIG_SECTION) if isinstance(params.settings, dict) else None
    if isinstance(pushed, dict):
        ls.client_settings = pushed
    else:
        await _pull_configuration(ls)
    await _reconfigure(ls)


@SERVER.feature(lsp.SHUTDOWN)
async def shutdown(ls: CodeContextServer, params: None) -> None:
    """Stop syncs between batches and close every index before the client's exit."""
    folders, ls.folders = list(ls.folders.values()), {}
    await asyncio.gather(*(_close(f) for f in folders))


# -- document and file events


@SERVER.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CodeContextServer, params: lsp.DidOpenTextDocumentParams) -> None:
    _touch(ls, params.text_document.uri, SAVE_COALESCE_SECONDS)


@SERVER.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: CodeContextServer, params: lsp.DidSaveTextDocumentParams) -> None:
    _touch(ls, params.text_document.uri, SAVE_COALESCE_SECONDS)


@SERVER.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: CodeContextServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    """Created, changed and deleted are all 'look again': sync_paths tells them apart."""
    for change in params.changes:
        _touch(ls, change.uri)


# -- symbols


@SERVER.feature(lsp.WORKSPACE_SYMBOL)
async def workspace_symbol(ls: CodeContextServer, params: lsp.WorkspaceSymbolParams) -> list[lsp.WorkspaceSymbol]:
    if not params.query.strip():
        return []
    return await asyncio.to_thread(_workspace_symbols, list(ls.folders.values()), params.query)


@SERVER.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def document_symbol(ls: CodeContextServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
    """The outline as last indexed (saved content)."""
    found = _locate(ls, params.text_document.uri)
    if found is None or found[0].index is None:
        return []
    return document_symbols(found[0].index.symbols.symbols_in(found[1]))


# -- codeContext/* requests


@SERVER.feature(protocol.SEARCH)
async def search(ls: CodeContextServer, raw: Any) -> Any:
    """Search one or all folders; answers from what is indexed so far, marking it partial."""
    with _invalid_params():
        params = protocol.structure(raw, protocol.SearchParams)
        query, limit, mode = engine.validate(
            params.query, ls.settings.search.limit if params.limit is None else params.limit,
            ls.settings.search.mode if params.mode is None else params.mode)
        engine.globs("include", params.include or ())
        engine.globs("exclude", params.exclude or ())
        folders = _folders(ls, params.workspace_folder)
    stop = threading.Event()
    try:
        hits, incomplete = await asyncio.get_running_loop().run_in_executor(
            ls.searches, _search_folders, folders, params, query, limit, mode, stop)
    except asyncio.CancelledError:  # $/cancelRequest: queued work is dropped, running work stops early
        stop.set()
        raise
    return _response(hits, incomplete)


@SERVER.feature(protocol.SIMILAR)
async def similar(ls: CodeContextServer, raw: Any) -> Any:
    """Code like the given lines of a document, in that document's folder."""
    with _invalid_params():
        params = protocol.structure(raw, protocol.SimilarParams)
        limit = _limit(params.limit, ls.settings.search.limit)
        found = _locate(ls, params.uri)
        if found is None:
            raise InvalidInput("uri", "is outside the workspace folders")
        folder, rel = found
        start, end = params.range.start, params.range.end
        if min(start.line, start.character, end.line, end.character) < 0 or (end.line, end.character) < (
                start.line, start.character):
            raise InvalidInput("range", "must be a non-empty, ordered range of non-negative positions")
        if folder.index is None:
            return _response([], True)
        lines = await asyncio.to_thread(_document_lines, ls, params.uri, folder.root / rel)
        if folder.index.settings.index.redact_secrets:  # the lines go to the embedder, maybe a remote one
            lines = await asyncio.to_thread(redaction.redact_lines, lines, rel)
        last = max(end.line + (end.character > 0), start.line + 1)  # exclusive
        text = "".join(lines[start.line:last])
        results = await asyncio.get_running_loop().run_in_executor(
            ls.searches, engine.similar, folder.index, rel, text, start.line + 1, last, limit)
    return _response([(folder, r) for r in results], folder.syncing)


@SERVER.feature(protocol.STATUS)
async def status(ls: CodeContextServer, raw: Any) -> Any:
    with _invalid_params():
        protocol.structure(raw, protocol.StatusParams)
    folders = list(ls.folders.values())
    statuses = await asyncio.to_thread(lambda: [_status(ls, f) for f in folders])
    return protocol.unstructure(protocol.StatusResponse(statuses))


@SERVER.feature(protocol.REINDEX)
async def reindex(ls: CodeContextServer, raw: Any) -> Any:
    """Start a sync of one or all folders; `started` is false when each one is already syncing."""
    with _invalid_params():
        params = protocol.structure(raw, protocol.ReindexParams)
        folders = _folders(ls, params.workspace_folder)
    started = False
    for folder in folders:
        if folder.index is not None and not folder.syncing:
            folder.syncing = started = True
            ls.spawn(_index(ls, folder, force=bool(params.force)))
    return protocol.unstructure(protocol.ReindexResponse(started))


@SERVER.feature(protocol.CLEAR_INDEX)
async def clear_index(ls: CodeContextServer, raw: Any) -> Any:
    """Stop a running sync, then forget the folder's index (on its sync lane, after the sync)."""
    with _invalid_params():
        params = protocol.structure(raw, protocol.ClearIndexParams)
        folders = _folders(ls, params.workspace_folder)
    for folder in folders:
        if folder.index is not None:
            folder.sync_cancel.set()
            await asyncio.get_running_loop().run_in_executor(folder.sync_lane, folder.index.clear)
    return protocol.unstructure(protocol.ClearIndexResponse())


# -- running


class _ClientLogHandler(logging.Handler):
    """Forwards warnings, and this module's info, to the client's window/logMessage."""

    LEVELS = {logging.ERROR: lsp.MessageType.Error, logging.WARNING: lsp.MessageType.Warning,
              logging.INFO: lsp.MessageType.Info}

    def __init__(self, ls: CodeContextServer) -> None:
        super().__init__(logging.INFO)
        self.ls = ls
        self.addFilter(lambda r: r.levelno >= logging.WARNING or r.name == __name__)

    def emit(self, record: logging.LogRecord) -> None:
        loop = self.ls.loop
        if loop is None or loop.is_closed():
            return
        kind = self.LEVELS.get(min(record.levelno, logging.ERROR), lsp.MessageType.Log)
        params = lsp.LogMessageParams(type=kind, message=self.format(record))
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.ls.window_log_message, params)


def _configure_logging(level_name: str, log_file: str | None) -> None:
    level = getattr(logging, level_name.upper())
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    # Other libraries (pygls logs every message body at info) speak up from warning on,
    # unless the user asked for debug.
    logging.basicConfig(level=logging.DEBUG if level == logging.DEBUG else logging.WARNING,
                        handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lsp_server").setLevel(level)
    # pygls logs a traceback for every error response: a client's bad params are no server fault.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(
        lambda r: not (r.exc_info and isinstance(r.exc_info[1], JsonRpcInvalidParams)))
    logging.getLogger("lsp_server").addHandler(_ClientLogHandler(SERVER))


def _protocol_stdout() -> BinaryIO:
    """A private copy of stdout for the protocol; fd 1 then points at stderr, so a stray
    print, in a library or a child process, cannot corrupt the message stream."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "wb")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level, args.log_file)
    try:
        if args.tcp:
            if not _is_loopback(args.host):
                log.warning("listening on %s: anyone who can reach it can read your code", args.host)
            log.info("listening on %s:%d (TCP)", args.host, args.port)
            SERVER.start_tcp(args.host, args.port)
        else:
            SERVER.start_io(sys.stdin.buffer, _protocol_stdout())
    finally:
        # The client went away, perhaps without shutdown: running syncs stop between batches.
        for folder in SERVER.folders.values():
            folder.closing.set()
            if folder.observer is not None:
                folder.observer.stop()
    return 0
