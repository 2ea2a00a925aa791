"""The owner's socket: answers other processes' requests about the folder it holds.

Followers send the requests an editor sends (codeContext/*, workspace/symbol,
textDocument/documentSymbol) plus codeContext/attach, codeContext/didChangeFiles and
codeContext/verify, framed as LSP frames (jsonrpc.py). Each answer comes from the same
FolderHost the owner's own face uses, so a follower's results equal the owner's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from . import protocol, query, sharing, wire
from .errors import EmbeddingError, FolderUnavailable, InvalidInput, StoreError
from .host import SAVE_COALESCE_SECONDS, FolderHost
from .jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Connection

log = logging.getLogger(__name__)

# How long a request that arrives while the owner is still opening the index waits for it.
OPEN_WAIT_SECONDS = 15.0
REQUEST_THREADS = 4


def path_uri(path: Path) -> str:
    return path.as_uri()


class OwnerServer:
    """Listens on the folder's socket from the moment the folder is claimed; requests that
    arrive before the index is open wait for it (``set_host``)."""

    def __init__(self, index_dir: Path, root: Path, face: str, identity: protocol.Identity) -> None:
        self.root = root
        self.face = face
        self.identity = identity
        self.clients: dict[Connection, protocol.Peer] = {}
        self._host: FolderHost | None = None
        self._ready = threading.Event()
        self._open_error: str | None = None
        self._pool = ThreadPoolExecutor(REQUEST_THREADS, "cc-owner")
        self._sock = sharing.listen(index_dir)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="cc-owner-accept", daemon=True)
        self._thread.start()

    def set_host(self, host: FolderHost | None, error: str | None = None) -> None:
        """The index is open (or failed to open, with the reason followers are told)."""
        self._host, self._open_error = host, error
        self._ready.set()

    def owner_info(self) -> protocol.OwnerInfo:
        return protocol.OwnerInfo(os.getpid(), self.face, list(self.clients.values()))

    def close(self) -> None:
        """Stop listening and drop every follower; they elect the next owner."""
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for conn in list(self.clients):
            conn.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- connections

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            uid = sharing.peer_uid(sock)
            if uid is not None and uid != os.getuid():
                log.warning("refused a connection from uid %d on the folder's socket", uid)
                sock.close()
                continue
            conn = Connection(sock, on_lost=self._forget, on_message=self._on_message, name="cc-owner-conn")
            if not conn.closed.is_set():
                self.clients.setdefault(conn, protocol.Peer(0, "unknown"))

    def _forget(self, conn: Connection) -> None:
        self.clients.pop(conn, None)

    def _on_message(self, conn: Connection, message: dict[str, Any]) -> None:
        method = message.get("method")
        if "id" not in message:  # a notification: cheap, handled in order on the reader thread
            if method == protocol.DID_CHANGE_FILES:
                self._changed(message.get("params"))
            return
        try:
            self._pool.submit(self._answer, conn, message)
        except RuntimeError:  # closing
            conn.respond(message["id"], error=(INTERNAL_ERROR, "the folder's owner is shutting down"))

    def _answer(self, conn: Connection, message: dict[str, Any]) -> None:
        msg_id, method, params = message["id"], message.get("method"), message.get("params")
        try:
            result = self.dispatch(conn, str(method), params)
        except KeyError:
            conn.respond(msg_id, error=(METHOD_NOT_FOUND, f"unknown method {method}"))
        except InvalidInput as exc:
            conn.respond(msg_id, error=(INVALID_PARAMS, str(exc)))
        except (StoreError, EmbeddingError, FolderUnavailable) as exc:
            conn.respond(msg_id, error=(INTERNAL_ERROR, str(exc)))
        except Exception as exc:  # a bug must not take the owner down with it
            log.exception("answering %s failed", method)
            conn.respond(msg_id, error=(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            conn.respond(msg_id, result)

    # -- requests

    def dispatch(self, conn: Connection | None, method: str, raw: Any) -> Any:
        if method == protocol.ATTACH:
            params = protocol.structure(raw, protocol.AttachParams)
            if conn is not None:
                self.clients[conn] = protocol.Peer(params.process_id, params.face)
            return protocol.unstructure(protocol.AttachResponse(os.getpid(), self.face, str(self.root), self.identity))
        if method == protocol.STATUS:
            protocol.structure(raw, protocol.StatusParams)
            host = self._host
            if host is None:
                raise FolderUnavailable(self._open_error or "the folder's index is still opening")
            status = wire.folder_status(path_uri(self.root), host.status(), self.owner_info())
            return protocol.unstructure(protocol.StatusResponse([status]))
        handler = {
            protocol.SEARCH: self._search, protocol.SIMILAR: self._similar, protocol.REINDEX: self._reindex,
            protocol.CLEAR_INDEX: self._clear, protocol.VERIFY: self._verify,
            "workspace/symbol": self._workspace_symbol, "textDocument/documentSymbol": self._document_symbol,
        }[method]
        return handler(raw)

    def host(self) -> FolderHost:
        if not self._ready.wait(OPEN_WAIT_SECONDS) or self._host is None:
            raise FolderUnavailable(self._open_error or "the folder's index is still opening")
        return self._host

    def _uri_of(self, rel: str) -> str:
        return path_uri(self.root / rel)

    def _search(self, raw: Any) -> Any:
        params = protocol.structure(raw, protocol.SearchParams)
        host = self.host()
        settings = host.index.settings.search
        q = query.make(params.query, settings.limit if params.limit is None else params.limit,
                       settings.mode if params.mode is None else params.mode,
                       params.include or (), params.exclude or (), params.languages or ())
        results, partial = host.search(q)
        return wire.search_response([(self._uri_of, r) for r in results], partial)

    def _similar(self, raw: Any) -> Any:
        params = protocol.structure(raw, protocol.SimilarParams)
        host = self.host()
        limit = query.check_limit(host.index.settings.search.limit if params.limit is None else params.limit)
        rel = self.relative(params.uri)
        start, end = params.range.start, params.range.end
        if min(start.line, start.character, end.line, end.character) < 0 or (end.line, end.character) < (
                start.line, start.character):
            raise InvalidInput("range", "must be a non-empty, ordered range of non-negative positions")
        path = self.root / rel
        if not path.is_file():  # never block on a FIFO or read a device
            raise InvalidInput("uri", "is not a readable file")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        last = max(end.line + (end.character > 0), start.line + 1)  # exclusive
        results = host.similar(rel, lines, start.line + 1, last, limit)
        return wire.search_response([(self._uri_of, r) for r in results], host.syncing)

    def _reindex(self, raw: Any) -> Any:
        params = protocol.structure(raw, protocol.ReindexParams)
        started = self.host().start_sync(force=bool(params.force)) is not None
        return protocol.unstructure(protocol.ReindexResponse(started))

    def _clear(self, raw: Any) -> Any:
        protocol.structure(raw, protocol.ClearIndexParams)
        self.host().clear()
        return protocol.unstructure(protocol.ClearIndexResponse())

    def _verify(self, raw: Any) -> Any:
        protocol.structure(raw, protocol.VerifyParams)
        diff = self.host().verify()
        return protocol.unstructure(protocol.VerifyResponse(
            diff.files, diff.chunks, [f"{p} {c}" for p, c in diff.missing], [f"{p} {c}" for p, c in diff.extra],
            [f"{p} {c}" for p, c in diff.duplicates], diff.symbol_orphans, [f"{p} {c}" for p, c in diff.search_index]))

    def _workspace_symbol(self, raw: Any) -> Any:
        text = raw.get("query") if isinstance(raw, dict) else None
        if not isinstance(text, str):
            raise InvalidInput("query", "must be a string")
        if not text.strip():
            return []
        hits = self.host().symbols(text)
        return [wire.workspace_symbol(self._uri_of, path, sym) for path, sym, _ in hits]

    def _document_symbol(self, raw: Any) -> Any:
        doc = raw.get("textDocument") if isinstance(raw, dict) else None
        uri = doc.get("uri") if isinstance(doc, dict) else None
        if not isinstance(uri, str):
            raise InvalidInput("textDocument.uri", "must be a string")
        return wire.document_symbols(self.host().outline(self.relative(uri)))

    def relative(self, uri: str) -> str:
        """The folder-relative path of a file URI; symlinks and `..` cannot leave the folder."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise InvalidInput("uri", "must be a file URI")
        try:
            rel = Path(unquote(parsed.path)).resolve().relative_to(self.root)
        except (ValueError, OSError, RuntimeError):
            raise InvalidInput("uri", "is outside the folder") from None
        return rel.as_posix()

    def _changed(self, raw: Any) -> None:
        try:
            params = protocol.structure(raw, protocol.DidChangeFilesParams)
        except InvalidInput as exc:
            log.warning("ignored %s: %s", protocol.DID_CHANGE_FILES, exc)
            return
        rels = [r for p in params.paths if (r := _inside(self.root, p)) is not None]
        host = self._host
        if rels and host is not None:
            host.changed(rels, SAVE_COALESCE_SECONDS)


def _inside(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).resolve().relative_to(root).as_posix()
    except (ValueError, OSError, RuntimeError):
        return None
