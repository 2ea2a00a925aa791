"""A small OpenAI-compatible ``/v1/embeddings`` server for tests and benchmarks.

Real HTTP on 127.0.0.1, so the provider is exercised through the real ``openai`` client,
its transport and its error mapping. Vectors are a deterministic function of the text, so
tests can check order; faults are scripted per request, so tests can check recovery.

    with FakeOpenAIServer(dimension=32) as server:
        server.fail_next("429", times=2, retry_after=0.1)
        server.latency = 0.02            # seconds added to every request
        server.api_key = "sk-good"       # any other Authorization gets a 401
        ... OpenAIEmbedder(EmbeddingSettings(provider="openai", base_url=server.base_url)) ...
        server.requests, server.max_in_flight
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

FAULTS = frozenset({
    "429", "500", "503", "400", "401", "403", "404",
    "hang", "malformed", "html", "wrong_count", "wrong_dimension", "bad_index",
})


@dataclass
class Fault:
    kind: str
    retry_after: float | None = None


@dataclass
class RecordedRequest:
    path: str
    inputs: list[str]
    model: str | None
    dimensions: int | None
    encoding_format: str | None
    authorization: str | None
    started: float
    fault: str | None = None
    body: dict[str, Any] = field(default_factory=dict)


def vector_for(text: str, dimension: int, semantic: bool = False) -> np.ndarray:
    """The raw (unnormalised) vector the server returns for text: seeded by its hash, or, when
    semantic, the hash embedder's (texts sharing identifier words point the same way), so
    searches through the provider rank like real ones. Never all zeros."""
    if semantic:
        from lsp_server.embedding import HashEmbedder

        vec = HashEmbedder(dimension)._vector(text)
        if np.any(vec):
            return vec
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)


class FakeOpenAIServer:
    """Serves embeddings until closed; every attribute below may be changed between requests."""

    def __init__(self, dimension: int = 32, latency: float = 0.0, hang_seconds: float = 5.0,
                 max_input_bytes: int | None = None, semantic: bool = False, api_key: str | None = None) -> None:
        self.dimension = dimension
        self.latency = latency
        self.semantic = semantic
        # When set, a request without `Authorization: Bearer <api_key>` is answered 401.
        self.api_key = api_key
        self.hang_seconds = hang_seconds
        # Like a real endpoint's context limit: longer inputs are rejected with 400.
        self.max_input_bytes = max_input_bytes
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-openai", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes any "hang" handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scripting -------------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1, retry_after: float | None = None) -> None:
        """Queue a fault for each of the next `times` requests (after faults already queued)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.extend(Fault(kind, retry_after) for _ in range(times))

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.max_in_flight = 0

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def expected(self, text: str, dimensions: int | None = None) -> np.ndarray:
        """The L2-normalised vector a client should end up with for text."""
        vec = vector_for(text, dimensions or self.dimension, self.semantic)
        return vec / np.linalg.norm(vec)

    # -- serving ---------------------------------------------------------------------------

    def _begin(self, record: RecordedRequest) -> Fault | None:
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._faults.popleft() if self._faults else None
        record.fault = fault.kind if fault else None
        return fault

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def respond(self, record: RecordedRequest, fault: Fault | None) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request: the whole of the server's behaviour."""
        if self.latency:
            time.sleep(self.latency)
        kind = fault.kind if fault else None
        if kind == "hang":
            self._closing.wait(self.hang_seconds)
            kind = None
        if kind in ("429", "500", "503"):
            headers = {} if fault is None or fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            message = "Rate limit reached" if kind == "429" else "The server had an error"
            return int(kind), headers, _error(message, "server_error")
        if kind is None and self.api_key is not None and record.authorization != f"Bearer {self.api_key}":
            kind = "401"
        if kind == "401":
            # Echo the key, as careless servers do, so the client's scrubbing is tested.
            return 401, {}, _error(f"Incorrect API key provided: {record.authorization}", "invalid_api_key")
        if kind == "403":
            return 403, {}, _error("You are not allowed to use this model", "permission_denied")
        if kind == "404":
            return 404, {}, _error(f"The model `{record.model}` does not exist", "model_not_found")
        if kind == "400":
            return 400, {}, _error(f"Invalid request from {record.authorization}", "invalid_request_error")
        if kind == "malformed":
            return 200, {"Content-Type": "application/json"}, b'{"object": "list", "data": [{"embedd'
        if kind == "html":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Bad gateway</body></html>"
        if not record.inputs or any(t == "" for t in record.inputs):
            return 400, {}, _error("'$.input' is invalid: empty string", "invalid_request_error")
        if self.max_input_bytes is not None and any(len(t.encode()) > self.max_input_bytes for t in record.inputs):
            return 400, {}, _error("This model's maximum context length was exceeded", "context_length_exceeded")

        dimension = record.dimensions or self.dimension
        if kind == "wrong_dimension":
            dimension += 3
        texts = record.inputs[:-1] if kind == "wrong_count" else record.inputs
        data = []
        for index, text in enumerate(texts):
            vec = vector_for(text, dimension, self.semantic)
            embedding: Any = (base64.b64encode(vec.tobytes()).decode() if record.encoding_format == "base64"
                              else [float(x) for x in vec])
            data.append({"object": "embedding", "index": 0 if kind == "bad_index" else index,
                         "embedding": embedding})
        tokens = sum(len(t) // 4 + 1 for t in record.inputs)
        body = {"object": "list", "data": data, "model": record.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _error(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                 "param": None, "code": code}}).encode()


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {}
            inputs = body.get("input", [])
            record = RecordedRequest(
                path=self.path,
                inputs=[inputs] if isinstance(inputs, str) else list(inputs),
                model=body.get("model"),
                dimensions=body.get("dimensions"),
                encoding_format=body.get("encoding_format"),
                authorization=self.headers.get("Authorization"),
                started=time.monotonic(),
                body=body,
            )
            fault = server._begin(record)
            try:
                if not self.path.rstrip("/").endswith("/embeddings"):
                    status, headers, payload = 404, {}, _error(f"no route {self.path}", "not_found")
                else:
                    status, headers, payload = server.respond(record, fault)
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to tell it
            finally:
                server._end()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return Handler
