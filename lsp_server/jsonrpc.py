"""JSON-RPC 2.0 with LSP's Content-Length framing over a stream socket.

A folder's owner and its followers talk over a Unix socket in the same protocol an editor
speaks to the language server: the same frames, the same method names, the same params.
This module is the transport only, in plain sockets and threads, so that a forwarding CLI
starts without pygls, torch or pymilvus.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

# A frame larger than this is a broken or hostile peer, not a search result.
MAX_FRAME_BYTES = 64 * 1024 * 1024

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class ConnectionLost(Exception):
    """The peer went away (it exited, was killed, or closed the socket)."""


class RemoteError(Exception):
    """The peer answered a request with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream. A malformed frame ends the stream:
    past it nothing can be trusted to be aligned."""
    length = None
    while True:
        line = stream.readline(4096)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("ascii", "replace").partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
    if length is None or not 0 <= length <= MAX_FRAME_BYTES:
        return None
    body = stream.read(length)
    if len(body) < length:
        return None
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return message if isinstance(message, dict) else None


class Connection:
    """One side of a socket: requests with futures, notifications, and a reader thread.

    Thread-safe: any thread may send; answers are matched by id. ``on_lost`` runs once, on
    the reader thread, when the peer goes away; requests still waiting then fail with
    ConnectionLost, so a caller can retry against the folder's next owner.
    """

    def __init__(self, sock: socket.socket, on_lost: Callable[[Connection], None] | None = None,
                 on_message: Callable[[Connection, dict[str, Any]], None] | None = None, name: str = "cc-rpc") -> None:
        self.sock = sock
        self._rfile = sock.makefile("rb")
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._waiting_lock = threading.Lock()
        self._on_lost = on_lost
        self._on_message = on_message  # requests and notifications from the peer
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        with self._send_lock:
            if self.closed.is_set():
                raise ConnectionLost("the connection is closed")
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise ConnectionLost(str(exc)) from None

    def request_async(self, method: str, params: Any = None) -> Future[Any]:
        future: Future[Any] = Future()
        msg_id = next(self._ids)
        with self._waiting_lock:
            if self.closed.is_set():
                future.set_exception(ConnectionLost("the connection is closed"))
                return future
            self._waiting[msg_id] = future
        try:
            self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        except ConnectionLost as exc:
            with self._waiting_lock:
                self._waiting.pop(msg_id, None)
            future.set_exception(exc)
        return future

    def request(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        return self.request_async(method, params).result(timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def respond(self, msg_id: Any, result: Any = None, error: tuple[int, str] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id}
        if error is None:
            message["result"] = result
        else:
            message["error"] = {"code": error[0], "message": error[1]}
        try:
            self.send(message)
        except ConnectionLost:
            pass  # the asker left: nobody is waiting for this answer

    def close(self) -> None:
        with self._send_lock:
            if not self.closed.is_set():
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _read(self) -> None:
        try:
            while (message := read_message(self._rfile)) is not None:
                if "method" in message:
                    if self._on_message is not None:
                        self._on_message(self, message)
                    continue
                with self._waiting_lock:
                    future = self._waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
                if future is None:
                    continue
                error = message.get("error")
                if isinstance(error, dict):
                    future.set_exception(RemoteError(int(error.get("code", INTERNAL_ERROR)),
                                                     str(error.get("message", "error"))))
                else:
                    future.set_result(message.get("result"))
        except (OSError, ValueError):
            pass
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._send_lock:
            self.closed.set()
        with self._waiting_lock:
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(ConnectionLost("the folder's owner went away"))
        try:
            self._rfile.close()
            self.sock.close()
        except OSError:
            pass
        if self._on_lost is not None:
            self._on_lost(self)
