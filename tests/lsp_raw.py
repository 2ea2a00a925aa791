"""A tiny raw JSON-RPC client for the language server over stdio, for fault tests.

pytest-lsp's client only sends well-formed messages; this one writes bytes, so tests can
send bad frames, kill the process at any moment and read what came back. It answers the
server's own requests (configuration, registration, progress) with empty results.

    with RawServer([root], cache_dir=cache) as server:
        server.wait_idle()
        server.request("codeContext/search", {"query": "retry"})
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HASH = {"embedding": {"provider": "hash"}}
SERVER_CMD = [sys.executable, "-m", "lsp_server"]


class ServerGone(Exception):
    """The server process exited or closed its stdout."""


def frame(payload: bytes | str | dict[str, Any]) -> bytes:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    body = payload.encode() if isinstance(payload, str) else payload
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawServer:
    def __init__(self, folders: list[Path], *, cache_dir: Path, init_options: Any = HASH,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 capabilities: dict[str, Any] | None = None, command: list[str] | None = None,
                 initialize: bool = True) -> None:
        self.folders = folders
        full_env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(cache_dir), **(env or {})}
        self.log_path = log_path or cache_dir.parent / f"server-{time.monotonic_ns()}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command or SERVER_CMD, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=full_env)
        self._next_id = 0
        self._lock = threading.Condition()
        self.responses: dict[Any, dict[str, Any]] = {}
        self.unmatched: list[dict[str, Any]] = []  # responses with an id we never sent (e.g. null)
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if initialize:
            self.initialize(init_options, capabilities or {})

    # -- transport ---------------------------------------------------------------------------
    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        try:
            while True:
                headers: dict[str, str] = {}
                while True:
                    line = out.readline()
                    if not line:
                        raise EOFError
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode("ascii", "replace").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = out.read(int(headers["content-length"]))
                self._dispatch(json.loads(body))
        except (EOFError, ValueError, KeyError, OSError):
            pass
        finally:
            with self._lock:
                self.closed = True
                self._lock.notify_all()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if "method" in msg and "id" in msg:  # a request from the server: answer it
            self.server_requests.append(msg)
            result: Any = None
            if msg["method"] == "workspace/configuration":
                result = [None for _ in msg.get("params", {}).get("items", [])]
            self.send_raw(frame({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
            return
        with self._lock:
            if "method" in msg:
                self.notifications.append(msg)
            elif msg.get("id") is not None and isinstance(msg.get("id"), (int, str)):
                self.responses[msg["id"]] = msg
            else:
                self.unmatched.append(msg)
            self._lock.notify_all()

    def send_raw(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise ServerGone(str(exc)) from exc

    # -- JSON-RPC ----------------------------------------------------------------------------
    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def send_request(self, method: str, params: Any = None, *, omit_params: bool = False) -> int:
        msg_id = self.new_id()
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if not omit_params:
            msg["params"] = params
        self.send_raw(frame(msg))
        return msg_id

    def wait_response(self, msg_id: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while msg_id not in self.responses:
                if self.closed:
                    raise ServerGone(f"server closed its output (exit {self.proc.poll()}) waiting for {msg_id}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no response to request {msg_id} in {timeout} s")
                self._lock.wait(min(left, 0.5))
            return self.responses.pop(msg_id)

    def call(self, method: str, params: Any = None, timeout: float = 30, **kw: Any) -> dict[str, Any]:
        """The whole response message: {"result": ...} or {"error": {...}}."""
        return self.wait_response(self.send_request(method, params, **kw), timeout)

    def request(self, method: str, params: Any = None, timeout: float = 30) -> Any:
        """The result; AssertionError carrying the error otherwise."""
        answer = self.call(method, params, timeout)
        assert "error" not in answer, f"{method} failed: {answer['error']}"
        return answer["result"]

    def notify(self, method: str, params: Any = None) -> None:
        self.send_raw(frame({"jsonrpc": "2.0", "method": method, "params": params}))

    # -- LSP ---------------------------------------------------------------------------------
    def initialize(self, init_options: Any, capabilities: dict[str, Any]) -> None:
        self.request("initialize", {
            "processId": os.getpid(), "rootUri": None, "capabilities": capabilities,
            "workspaceFolders": [{"uri": f.as_uri(), "name": f.name} for f in self.folders],
            "initializationOptions": init_options}, timeout=60)
        self.notify("initialized", {})

    def status(self, timeout: float = 30) -> list[dict[str, Any]]:
        return self.request("codeContext/status", {}, timeout)["folders"]

    def wait_idle(self, timeout: float = 120, poll: float = 0.1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        folders: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            folders = self.status()
            if folders and all(f["state"] in ("idle", "error") for f in folders) and all(
                    f["state"] == "error" or f["pendingChunks"] == 0 for f in folders):
                return folders
            time.sleep(poll)
        raise AssertionError(f"still indexing after {timeout} s: {folders}")

    def search(self, query: str, **params: Any) -> dict[str, Any]:
        return self.request("codeContext/search", {"query": query, **params})

    def messages(self, method: str = "window/showMessage") -> list[str]:
        with self._lock:
            return [n["params"]["message"] for n in self.notifications if n["method"] == method]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self._close_pipes()

    def shutdown(self, timeout: float = 30) -> int | None:
        """A polite shutdown and exit; kills the process if it does not leave in time."""
        try:
            if self.alive():
                self.call("shutdown", None, timeout=timeout)
                self.notify("exit")
                self.proc.wait(timeout=timeout)
        except (ServerGone, TimeoutError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self._close_pipes()
        return self.proc.returncode

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        self._reader.join(timeout=5)
        self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def wait_for(check: Any, timeout: float = 30, poll: float = 0.1, what: str = "condition") -> Any:
    """The first truthy value of check(), polled; AssertionError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"{what} not reached in {timeout} s")
