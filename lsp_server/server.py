"""The language server: thin LSP handlers over the engine, one SharedFolder per folder.

The event loop only parses, validates and answers; engine work runs on threads. A folder
is owned by this process (its FolderHost syncs and answers here, and other processes reach
it through this process's socket) or followed (requests go to the owner's socket):
shared_folder.py decides, and takes over when an owner exits. Searches share a pool, so a
cancelled request that has not started never runs. docs/protocol.md describes the custom
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import MsgId
from pygls.uris import from_fs_path, to_fs_path

from . import protocol, query, wire
from .errors import EmbeddingError, FolderUnavailable, InvalidInput, StoreError
from .host import COALESCE_SECONDS, SAVE_COALESCE_SECONDS, FolderHost
from .query import Query, Result
from .settings import Settings, layered
from .shared_folder import SharedFolder
from .symbol_index import MAX_RESULTS as MAX_SYMBOLS
from .sync import SyncStats

log = logging.getLogger(__name__)

CONFIG_SECTION = "codeContext"
SEARCH_THREADS = 4
# How long a search that arrives while a folder opens waits for it, before answering without it.
OPEN_WAIT_SECONDS = 5.0

try:
    __version__ = version("code-context-lsp")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"


@attrs.define(eq=False)
class Folder:
    """A workspace folder as the client names it, and this process's side of its index."""

    uri: str
    path: Path  # as the client spells it, so result URIs match the client's
    root: Path  # resolved: the boundary no read may cross
    shared: SharedFolder | None = None
    opened: threading.Event = attrs.Factory(threading.Event)  # shared.start() has returned
    # The progress-shown sync this face started as the owner, if one runs.
    indexing: bool = False

    @classmethod
    def from_uri(cls, uri: str) -> Folder | None:
        fs_path = to_fs_path(uri)
        if not fs_path or not os.path.isabs(fs_path):
            return None
        return cls(uri, Path(fs_path), Path(fs_path).resolve())

    def uri_of(self, rel: str) -> str:
        return from_fs_path(str(self.path / rel)) or ""

    @property
    def host(self) -> FolderHost | None:
        return self.shared.host if self.shared is not None else None


@attrs.define
class RawRequest:
    """How a codeContext/* request is read off the wire: params stay plain JSON.
    pygls would turn unknown params into namedtuples, losing keys like `type_name`."""

    id: MsgId
    method: str
    jsonrpc: str
    params: Any = None


class _Protocol(LanguageServerProtocol):
    def get_message_type(self, method: str) -> type[Any] | None:  # type: ignore[override] # base: lru_cache
        """codeContext/* params arrive raw, for protocol.structure to validate strictly."""
        return RawRequest if method in protocol.METHODS else super().get_message_type(method)


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
Handler = Callable[[CodeContextServer, Any], Awaitable[Any]]


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


def _opened(folder: Folder) -> SharedFolder | None:
    """The folder's index once its opening has settled, waiting a bounded while for it: an
    editor's first query, sent right after initialized, must not come back empty."""
    if not folder.opened.wait(OPEN_WAIT_SECONDS):
        return None
    return folder.shared


def _search_folders(folders: list[Folder], q: Query,
                    stop: threading.Event) -> tuple[list[tuple[Folder, Result]], bool]:
    """Search each folder in turn and merge by score; stops between folders once cancelled."""
    hits: list[tuple[Folder, Result]] = []
    partial = False
    errors: list[str] = []
    for folder in folders:
        if stop.is_set():
            break
        shared = _opened(folder)
        if shared is None:
            partial = True
            continue
        try:
            results, incomplete = shared.search(q)
        except (StoreError, EmbeddingError, FolderUnavailable) as exc:
            log.warning("search in %s failed: %s", folder.path, exc)
            errors.append(str(exc))
            partial = True
            continue
        partial = partial or incomplete or folder.indexing
        hits += [(folder, r) for r in results]
    if errors and not hits:
        raise JsonRpcInternalError(errors[0])
    hits.sort(key=lambda h: h[1].score, reverse=True)
    return hits[:q.limit], partial


def _response(hits: list[tuple[Folder, Result]], partial: bool) -> Any:
    return wire.search_response([(f.uri_of, r) for f, r in hits], partial)


def _document_lines(ls: CodeContextServer, uri: str, path: Path) -> list[str]:
    """The open document's text (unsaved edits included), else the regular file on disk."""
    doc = ls.workspace.text_documents.get(uri)
    if doc is not None:
        return doc.lines
    if not path.is_file():  # never block on a FIFO or read a device
        raise InvalidInput("uri", "is not a readable file")
    return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)


def _status(ls: CodeContextServer, folder: Folder) -> protocol.FolderStatus:
    shared = folder.shared
    error = shared.error if shared is not None else None
    if shared is not None and folder.opened.is_set() and error is None:
        try:
            status = shared.status()
            return attrs.evolve(status, uri=folder.uri, state="indexing" if folder.indexing else status.state)
        except (FolderUnavailable, StoreError) as exc:
            error = str(exc)
    emb = ls.settings.embedding
    return protocol.FolderStatus(folder.uri, "error" if error else "indexing", 0, 0, 0, 0, 0, 0,
                                 protocol.EmbeddingInfo(emb.provider, emb.model or "", emb.dimensions or 0),
                                 protocol.StoreInfo(ls.settings.store.uri or ""), error)


def _workspace_symbols(folders: list[Folder], text: str) -> list[dict[str, Any]]:
    hits = []
    for folder in folders:
        shared = _opened(folder)
        if shared is None:
            continue
        try:
            hits += [(score, folder, path, sym) for path, sym, score in shared.symbols(text)]
        except FolderUnavailable as exc:
            log.warning("symbols of %s: %s", folder.path, exc)
    hits.sort(key=lambda h: h[0], reverse=True)
    return [wire.workspace_symbol(folder.uri_of, path, sym) for _, folder, path, sym in hits[:MAX_SYMBOLS]]


# -- settings


def _merged_settings(ls: CodeContextServer) -> Settings:
    """initializationOptions, then the client's configuration: the later source wins per key.
    Bad keys are named in a warning and fall back to their defaults."""
    settings, bad = layered([("initializationOptions", ls.init_options), ("configuration", ls.client_settings)])
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
            elif (host := folder.host) is not None and host.reconfigure(new):
                ls.spawn(_index(ls, folder, host))


# -- folder lifecycle


async def _open(ls: CodeContextServer, folder: Folder) -> None:
    """Own or follow the folder's index (on a thread: it may wait for an owner to answer).
    As the owner this process syncs it with progress, and watches it if the client cannot."""
    loop = asyncio.get_running_loop()

    def owned(host: FolderHost) -> None:  # on the electing thread, each time we become the owner
        loop.call_soon_threadsafe(lambda: ls.spawn(_index(ls, folder, host)))

    def changed() -> None:
        if folder.shared is not None and folder.shared.error:
            loop.call_soon_threadsafe(_tell, ls, lsp.MessageType.Error, folder.shared.error)

    folder.shared = SharedFolder(folder.root, ls.settings, "lsp", watch=ls.use_watchdog, on_owned=owned,
                                 on_change=changed)
    try:
        await asyncio.to_thread(folder.shared.start)
    finally:
        folder.opened.set()


async def _close(folder: Folder) -> None:
    if folder.shared is not None:
        await asyncio.to_thread(folder.shared.close)


async def _reopen(ls: CodeContextServer, folder: Folder) -> None:
    fresh = Folder(folder.uri, folder.path, folder.root)
    ls.folders[folder.uri] = fresh
    await _close(folder)
    ls.spawn(_open(ls, fresh))


async def _index(ls: CodeContextServer, folder: Folder, host: FolderHost, force: bool = False) -> None:
    """A full sync on the folder's sync lane, shown as work-done progress the user can cancel."""
    loop = asyncio.get_running_loop()
    token = f"codeContext/index/{uuid.uuid4()}"
    progress = ls.work_done_progress
    last = 0
    shown = False

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
        return user is not None and user.cancelled()

    future = host.start_sync(force, report, cancelled)
    if future is None:
        return
    folder.indexing = True
    try:
        shown = await _begin_progress(ls, token, f"Indexing {folder.path.name}")
        stats = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        stats = SyncStats(cancelled=True)
    finally:
        folder.indexing = False
    counts = f"{stats.files} files, {stats.changed_files} changed, {stats.seconds:.1f} s"
    summary = "cancelled" if stats.cancelled else f"failed: {stats.error}" if stats.error else counts
    log.info("indexing %s: %s", folder.path, summary if stats.cancelled or not stats.error else f"{counts}, {summary}")
    if shown:
        progress.end(token, lsp.WorkDoneProgressEnd(message=summary))
        progress.tokens.pop(token, None)
    if stats.error and not stats.cancelled:
        _tell(ls, lsp.MessageType.Error, f"indexing {folder.path.name} {summary}" + (
            f". Meanwhile keyword search finds the {stats.pending} chunks waiting for vectors; once that is "
            "fixed, run \"Code Context: Reindex Workspace\" to embed them" if stats.vectors_failed and stats.pending
            else ""))
    while host.index.notices:  # repairs the engine made, e.g. a damaged store rebuilt
        _tell(ls, lsp.MessageType.Warning, host.index.notices.pop(0))


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


def _touch(ls: CodeContextServer, uri: str, delay: float = COALESCE_SECONDS) -> None:
    found = _locate(ls, uri)
    if found is not None and (shared := found[0].shared) is not None:
        shared.changed([found[1]], delay)


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
async def workspace_symbol(ls: CodeContextServer, params: lsp.WorkspaceSymbolParams) -> list[dict[str, Any]]:
    """Answered as JSON (wire.py): the same lines build a follower's answer on the owner's socket."""
    if not params.query.strip():
        return []
    return await asyncio.to_thread(_workspace_symbols, list(ls.folders.values()), params.query)


@SERVER.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbol(ls: CodeContextServer, params: lsp.DocumentSymbolParams) -> list[dict[str, Any]]:
    """The outline as last indexed (saved content)."""
    found = _locate(ls, params.text_document.uri)
    if found is None or found[0].shared is None or not found[0].opened.is_set():
        return []
    try:
        symbols = await asyncio.to_thread(found[0].shared.outline, found[1])
    except FolderUnavailable:
        return []
    return wire.document_symbols(symbols)


# -- codeContext/* requests


def _request(method: str, params_type: type[Any]) -> Callable[[Handler], Any]:
    """Register a codeContext/* handler: its raw params are structured strictly first, and bad
    input anywhere in it is a -32602 naming the field. The handler gets typed params."""
    def register(fn: Handler) -> Any:
        @functools.wraps(fn)
        async def handler(ls: CodeContextServer, raw: Any) -> Any:
            with _invalid_params():
                return await fn(ls, protocol.structure(raw, params_type))
        return SERVER.feature(method)(handler)
    return register


@_request(protocol.SEARCH, protocol.SearchParams)
async def search(ls: CodeContextServer, params: protocol.SearchParams) -> Any:
    """Search one or all folders; answers from what is indexed so far, marking it partial."""
    q = query.make(params.query, ls.settings.search.limit if params.limit is None else params.limit,
                   ls.settings.search.mode if params.mode is None else params.mode,
                   params.include or (), params.exclude or (), params.languages or ())
    folders = _folders(ls, params.workspace_folder)
    stop = threading.Event()
    try:
        hits, incomplete = await asyncio.get_running_loop().run_in_executor(
            ls.searches, _search_folders, folders, q, stop)
    except asyncio.CancelledError:  # $/cancelRequest: queued work is dropped, running work stops early
        stop.set()
        raise
    return _response(hits, incomplete)


@_request(protocol.SIMILAR, protocol.SimilarParams)
async def similar(ls: CodeContextServer, params: protocol.SimilarParams) -> Any:
    """Code like the given lines of a document, in that document's folder."""
    limit = query.check_limit(ls.settings.search.limit if params.limit is None else params.limit)
    found = _locate(ls, params.uri)
    if found is None:
        raise InvalidInput("uri", "is outside the workspace folders")
    folder, rel = found
    start, end = params.range.start, params.range.end
    if min(start.line, start.character, end.line, end.character) < 0 or (end.line, end.character) < (
            start.line, start.character):
        raise InvalidInput("range", "must be a non-empty, ordered range of non-negative positions")
    shared = await asyncio.to_thread(_opened, folder)
    if shared is None:
        return _response([], True)
    lines = await asyncio.to_thread(_document_lines, ls, params.uri, folder.root / rel)
    last = max(end.line + (end.character > 0), start.line + 1)  # exclusive
    try:
        results, incomplete = await asyncio.get_running_loop().run_in_executor(
            ls.searches, shared.similar, rel, lines, start.line + 1, last, limit)
    except (StoreError, EmbeddingError, FolderUnavailable) as exc:
        raise JsonRpcInternalError(str(exc)) from None
    return _response([(folder, r) for r in results], incomplete or folder.indexing)


@_request(protocol.STATUS, protocol.StatusParams)
async def status(ls: CodeContextServer, params: protocol.StatusParams) -> Any:
    folders = list(ls.folders.values())
    statuses = await asyncio.to_thread(lambda: [_status(ls, f) for f in folders])
    return protocol.unstructure(protocol.StatusResponse(statuses))


@_request(protocol.REINDEX, protocol.ReindexParams)
async def reindex(ls: CodeContextServer, params: protocol.ReindexParams) -> Any:
    """Start a sync of one or all folders; `started` is false when each one is already syncing."""
    started = False
    for folder in _folders(ls, params.workspace_folder):
        if (host := folder.host) is not None:
            if not host.syncing:
                started = True
                ls.spawn(_index(ls, folder, host, force=bool(params.force)))
        elif folder.shared is not None and folder.opened.is_set():
            with contextlib.suppress(FolderUnavailable):
                started = await asyncio.to_thread(folder.shared.reindex, bool(params.force)) or started
    return protocol.unstructure(protocol.ReindexResponse(started))


@_request(protocol.CLEAR_INDEX, protocol.ClearIndexParams)
async def clear_index(ls: CodeContextServer, params: protocol.ClearIndexParams) -> Any:
    """Stop a running sync, then forget the folder's index (on its sync lane, after the sync)."""
    for folder in _folders(ls, params.workspace_folder):
        if folder.shared is not None and folder.opened.is_set():
            try:
                await asyncio.to_thread(folder.shared.clear)
            except FolderUnavailable as exc:
                raise JsonRpcInternalError(str(exc)) from None
    return protocol.unstructure(protocol.ClearIndexResponse())
