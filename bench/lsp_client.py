"""A small synchronous JSON-RPC client for the language server over stdio.

Content-Length framing on the child's stdin/stdout; a reader thread routes responses to
waiting callers and answers the server's own requests (configuration, progress tokens,
capability registration) so it never blocks on us.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class LspError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


class LspClient:
    def __init__(self, root: Path | list[Path], options: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, python: str | None = None) -> None:
        self.roots = [root] if isinstance(root, Path) else list(root)
        self.options = options or {}
        self._env = {**os.environ, **(env or {})}
        self._python = python or str(REPO / ".venv" / "bin" / "python")
        if not Path(self._python).exists():
            self._python = sys.executable
        self._next_id = 0
        self._pending: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self.notifications: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._stderr: list[bytes] = []

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> LspClient:
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen([self._python, "-m", "lsp_server"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env,
                                     cwd=str(REPO))
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        return self

    def initialize(self, timeout: float = 120) -> dict[str, Any]:
        folders = [{"uri": r.resolve().as_uri(), "name": r.name} for r in self.roots]
        result = self.request("initialize", {
            "processId": os.getpid(),
            "rootUri": folders[0]["uri"],
            "workspaceFolders": folders,
            # As an editor would: it watches files itself (so the server runs no watchdog).
            "capabilities": {"workspace": {"configuration": True, "workspaceFolders": True,
                                           "didChangeWatchedFiles": {"dynamicRegistration": True}},
                             "window": {"workDoneProgress": True}},
            "initializationOptions": self.options,
        }, timeout=timeout)
        self.notify("initialized", {})
        return result

    def shutdown(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
                self.proc.wait(timeout=timeout)
        except Exception:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LspClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def stderr_text(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    # --- messages -----------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        body = json.dumps(message).encode("utf-8")
        with self._write_lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 60) -> Any:
        with self._cond:
            self._next_id += 1
            rid = self._next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                    raise TimeoutError(f"{method}: no answer in {timeout} s"
                                       f"{'; server exited' if self.proc and self.proc.poll() is not None else ''}"
                                       f"\n{self.stderr_text[-2000:]}")
                self._cond.wait(min(left, 0.5))
            message = self._pending.pop(rid)
        if "error" in message:
            raise LspError(message["error"])
        return message.get("result")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._cond:
                        self._cond.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                continue
            message = json.loads(out.read(length))
            if "id" in message and "method" in message:
                self._answer(message)
            elif "id" in message:
                with self._cond:
                    self._pending[message["id"]] = message
                    self._cond.notify_all()
            else:
                self.notifications.append(message)

    def _answer(self, message: dict[str, Any]) -> None:
        method = message["method"]
        result: Any = None
        if method == "workspace/configuration":
            items = (message.get("params") or {}).get("items") or []
            result = [self.options if item.get("section") in (None, "codeContext") else None for item in items]
        elif method == "workspace/workspaceFolders":
            result = [{"uri": r.resolve().as_uri(), "name": r.name} for r in self.roots]
        self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            if len(self._stderr) > 2000:
                del self._stderr[:1000]

    # --- Code Context -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.request("codeContext/status", {})

    def wait_idle(self, timeout: float = 3600, poll: float = 0.1, min_chunks: int = 1) -> dict[str, Any]:
        """Poll status until every folder is idle with nothing pending and something indexed."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            folders = status.get("folders") or []
            if folders and all(f.get("state") != "indexing" and f.get("pendingChunks", 1) == 0
                               and f.get("chunks", 0) >= min_chunks for f in folders):
                return status
            if any(f.get("state") == "error" and f.get("lastError") for f in folders):
                raise RuntimeError(f"indexing failed: {[f.get('lastError') for f in folders]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not idle after {timeout} s: {status}")
            time.sleep(poll)

    def search(self, query: str, limit: int = 10, mode: str = "hybrid", timeout: float = 120) -> dict[str, Any]:
        return self.request("codeContext/search", {"query": query, "limit": limit, "mode": mode}, timeout=timeout)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc; (0, 0) where unavailable."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def child_pids(pid: int) -> list[int]:
    """Every descendant of a process (Milvus Lite may run helpers)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            out.append(k)
            out.extend(child_pids(k))
    return out


def tree_rss_kib(pid: int) -> tuple[int, int]:
    """(RSS, peak RSS) summed over a process and its descendants."""
    total_rss = total_hwm = 0
    for p in [pid, *child_pids(pid)]:
        rss, hwm = rss_kib(p)
        total_rss += rss
        total_hwm += hwm
    return total_rss, total_hwm


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc; 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, below: float = 0.05, window: float = 1.0, timeout: float = 300) -> float:
    """Seconds until the process used under `below` of a core over a whole `window`.

    A server that reports idle may still be busy: Milvus Lite compacts segments and builds
    their HNSW index in a background thread after a bulk insert."""
    started = time.perf_counter()
    last = cpu_seconds(pid)
    while time.perf_counter() - started < timeout:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - last < below * window:
            return time.perf_counter() - started - window
        last = now
    raise TimeoutError(f"process {pid} still busy after {timeout:.0f} s")
