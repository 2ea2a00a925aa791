"""Malformed protocol input against the real server process (GitHub issue 8).

Property-based fuzzing of every custom request's params, and raw malformed JSON-RPC
frames on stdin. Every request gets a JSON-RPC error or a valid answer, the server stays
up, and a valid search afterwards still finds the right code.

`make test` runs CC_FUZZ_EXAMPLES (default 80) derandomised cases; bench/reliability.py
runs the same property with 1,000+ random ones.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from lsp_raw import RawServer, frame  # noqa: E402

pytestmark = pytest.mark.timeout(300)

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"
CUSTOM = ["codeContext/search", "codeContext/similar", "codeContext/status", "codeContext/reindex",
          "codeContext/clearIndex"]
# Top-level params fields per method: an invalid-params error must name one of them (or "params").
FIELDS = {
    "codeContext/search": {"query", "limit", "mode", "include", "exclude", "languages", "workspaceFolder"},
    "codeContext/similar": {"uri", "range", "limit"},
    "codeContext/status": set(),
    "codeContext/reindex": {"workspaceFolder", "force"},
    "codeContext/clearIndex": {"workspaceFolder"},
}
# What a request may legitimately fail with: invalid params, method not found, cancelled.
ALLOWED_ERRORS = {-32602, -32601, -32800}

# -- strategies --------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
ints = st.integers(min_value=-5, max_value=200) | st.integers(min_value=-(2**64), max_value=2**64)


def uris(root: Path) -> st.SearchStrategy[Any]:
    inside = [root / "src" / "http_client.py", root / "web" / "cart.js", root / "native" / "matrix.rs"]
    return st.one_of(
        st.sampled_from([p.as_uri() for p in inside]),
        st.sampled_from([root.as_uri(), "file:///etc/passwd", root.as_uri() + "/src/../../outside.py",
                         root.as_uri() + "/missing.py", "untitled:Untitled-1", "", "file://", "file:relative.py",
                         "http://example.com/x.py", root.as_uri() + "/src/%00.py", root.as_uri() + "/src"]),
        st.text(max_size=60), json_values)


def positions() -> st.SearchStrategy[Any]:
    return st.one_of(st.fixed_dictionaries({"line": ints, "character": ints}), json_values)


def ranges() -> st.SearchStrategy[Any]:
    return st.one_of(st.fixed_dictionaries({"start": positions(), "end": positions()}), json_values)


def str_lists() -> st.SearchStrategy[Any]:
    return st.lists(st.text(max_size=20), max_size=4) | json_values


def params_for(method: str, root: Path) -> st.SearchStrategy[Any]:
    folders = st.sampled_from([root.as_uri(), "file:///not/open", root.as_uri() + "/src"]) | json_values
    shaped: dict[str, st.SearchStrategy[Any]] = {
        "codeContext/search": st.fixed_dictionaries({}, optional={
            "query": st.text(max_size=1100) | json_values, "limit": ints | json_values,
            "mode": st.sampled_from(["hybrid", "semantic", "keyword", "HYBRID", ""]) | json_values,
            "include": str_lists(), "exclude": str_lists(), "languages": str_lists(), "workspaceFolder": folders,
            "extra": json_values}),
        "codeContext/similar": st.fixed_dictionaries({}, optional={
            "uri": uris(root), "range": ranges(), "limit": ints | json_values}),
        "codeContext/status": st.fixed_dictionaries({}, optional={"verbose": json_values}),
        "codeContext/reindex": st.fixed_dictionaries({}, optional={
            "workspaceFolder": folders, "force": st.booleans() | json_values}),
        "codeContext/clearIndex": st.fixed_dictionaries({}, optional={"workspaceFolder": folders}),
    }
    inside = st.sampled_from([(root / p).as_uri() for p in ("src/http_client.py", "web/cart.js", "native/matrix.rs")])
    small = st.integers(min_value=0, max_value=40)
    # Near-valid requests, so the answering paths are fuzzed as well as the rejecting ones.
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "codeContext/search": st.fixed_dictionaries(
            {"query": st.text(min_size=1, max_size=60) | st.sampled_from(["retry", "cart total", "matrix"])},
            optional={"limit": st.integers(min_value=1, max_value=100),
                      "mode": st.sampled_from(["hybrid", "semantic", "keyword"]),
                      "include": st.lists(st.sampled_from(["src/**", "*.js", "**/*.rs", "[", "!x", ""]), max_size=2),
                      "exclude": st.lists(st.sampled_from(["web/**", "*.py", "\\", "**"]), max_size=2),
                      "languages": st.lists(st.sampled_from(["python", "rust", "nope", ""]), max_size=2),
                      "workspaceFolder": st.just(root.as_uri())}),
        "codeContext/similar": st.fixed_dictionaries(
            {"uri": inside, "range": st.fixed_dictionaries({"start": st.fixed_dictionaries({"line": small, "character": small}),
                                                            "end": st.fixed_dictionaries({"line": small, "character": small})})},
            optional={"limit": st.integers(min_value=1, max_value=100)}),
    }
    near = plausible.get(method, shaped[method])
    return st.one_of(near, shaped[method], json_values)


def cases(root: Path) -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(*[st.tuples(st.just(m), params_for(m, root)) for m in CUSTOM])


# -- checks ------------------------------------------------------------------------------------


def check_result(method: str, result: Any, root: Path) -> None:
    """A valid answer has the documented shape and never points outside the workspace."""
    if method in ("codeContext/search", "codeContext/similar"):
        assert set(result) == {"results", "partial"} and isinstance(result["partial"], bool)
        for r in result["results"]:
            assert r["uri"].startswith(root.as_uri() + "/"), r["uri"]
            rng = r["range"]
            assert 0 <= rng["start"]["line"] < rng["end"]["line"]
            assert isinstance(r["score"], float | int) and isinstance(r["content"], str)
    elif method == "codeContext/status":
        assert [f["uri"] for f in result["folders"]] == [root.as_uri()]
    elif method == "codeContext/reindex":
        assert set(result) == {"started"} and isinstance(result["started"], bool)
    elif method == "codeContext/clearIndex":
        assert result == {}


def check_case(server: RawServer, root: Path, method: str, params: Any) -> dict[str, Any]:
    answer = server.call(method, params, timeout=30)
    assert server.alive(), "server died"
    if "error" in answer:
        error = answer["error"]
        assert error["code"] in ALLOWED_ERRORS, (method, params, error)
        assert isinstance(error["message"], str) and error["message"]
        if error["code"] == -32602:
            field = error["message"].split(":", 1)[0].split(".", 1)[0]
            assert field in FIELDS[method] | {"params"}, (method, params, error["message"])
    else:
        check_result(method, answer["result"], root)
    return answer


def assert_serving(server: RawServer, root: Path) -> None:
    """The server answers and, once re-synced, finds the right code (fuzzed clears included)."""
    deadline = time.monotonic() + 60
    while not server.request("codeContext/reindex", {"workspaceFolder": root.as_uri()})["started"]:
        assert time.monotonic() < deadline, "a sync never finished"
        time.sleep(0.1)
    server.wait_idle(timeout=120)
    top = server.search("retry failed http requests", limit=3)["results"][0]
    assert top["uri"] == (root / "src" / "http_client.py").as_uri()


def run_fuzz(server: RawServer, root: Path, examples: int, derandomize: bool, seed: int | None = None,
             failures: list[str] | None = None) -> dict[str, int]:
    """The property over `examples` generated requests; returns counts by outcome.

    With `failures` given, a violated check is recorded there instead of stopping the run
    (the benchmark wants every distinct failure); a dead server always stops it."""
    counts: dict[str, int] = {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(case=cases(root))
    def property_holds(case: tuple[str, Any]) -> None:
        method, params = case
        try:
            answer = check_case(server, root, method, params)
        except AssertionError as exc:
            if failures is None or not server.alive():
                raise
            failures.append(f"{method} {params!r}: {str(exc)[:300]}")
            counts[f"{method} check failed"] = counts.get(f"{method} check failed", 0) + 1
            return
        key = f"{method} " + (f"error {answer['error']['code']}" if "error" in answer else "ok")
        counts[key] = counts.get(key, 0) + 1

    if seed is not None:
        from hypothesis import seed as hypothesis_seed

        property_holds = hypothesis_seed(seed)(property_holds)
    property_holds()
    return counts


# -- tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "ws"
    shutil.copytree(FIXTURE, root)
    with RawServer([root], cache_dir=base / "cache") as server:
        server.wait_idle()
        yield server, root


def test_fuzzed_params_of_every_custom_request(served: tuple[RawServer, Path]) -> None:
    server, root = served
    examples = int(os.environ.get("CC_FUZZ_EXAMPLES", "80"))
    counts = run_fuzz(server, root, examples, derandomize=True)
    assert sum(counts.values()) >= examples
    # Both outcomes were exercised for the requests that have required params.
    for method in ("codeContext/search", "codeContext/similar"):
        assert any(k.startswith(method) and k.endswith("ok") for k in counts), counts
        assert any(k.startswith(method) and "error" in k for k in counts), counts
    assert_serving(server, root)


def test_invalid_glob_is_invalid_params(served: tuple[RawServer, Path]) -> None:
    server, _root = served
    for field in ("include", "exclude"):
        answer = server.call("codeContext/search", {"query": "retry", field: ["\\"]})
        assert answer.get("error", {}).get("code") == -32602, answer
        assert answer["error"]["message"].startswith(field), answer


def bad_frames(root: Path) -> list[tuple[str, bytes, int | None]]:
    """(name, bytes, expected error code of the reply to id 900, or None when no reply is owed)."""
    req = {"jsonrpc": "2.0", "id": 900}
    return [
        ("invalid JSON", frame(b"{bad json"), None),
        ("truncated JSON", frame(b'{"jsonrpc": "2.0", "id": 900, "method": "codeContext/sea'), None),
        ("NaN literal", frame(b'{"jsonrpc": "2.0", "id": 900, "method": "codeContext/search", '
                              b'"params": {"query": "x", "limit": NaN}}'), -32602),
        ("not an object", frame(b"[1, 2, 3]"), None),
        ("a bare number", frame(b"5"), None),
        ("invalid UTF-8 body", frame(b"\xff\xfe\x00\x01garbage"), None),
        ("empty body", b"Content-Length: 0\r\n\r\n", None),
        ("unknown method", frame({**req, "method": "codeContext/doesNotExist", "params": {}}), -32601),
        ("unknown LSP method", frame({**req, "method": "textDocument/unknownThing", "params": {}}), -32601),
        ("params is an array", frame({**req, "method": "codeContext/search", "params": ["x"]}), -32602),
        ("params is a string", frame({**req, "method": "codeContext/similar", "params": "x"}), -32602),
        ("params missing", frame({**req, "method": "codeContext/search"}), -32602),
        ("huge query", frame({**req, "method": "codeContext/search", "params": {"query": "x" * 5_000_000}}), -32602),
        ("deeply nested params", frame(b'{"jsonrpc": "2.0", "id": 900, "method": "codeContext/search", "params": '
                                       + b"[" * 100_000 + b"]" * 100_000 + b"}"), None),
        ("method is a number", frame({**req, "method": 5}), None),
        ("id is an object", frame({"jsonrpc": "2.0", "id": {"a": 1}, "method": "codeContext/status", "params": {}}),
         None),
        ("wrong jsonrpc version", frame({"jsonrpc": "1.0", "id": 900, "method": "codeContext/status", "params": {}}),
         None),
        ("no jsonrpc member", frame({"id": 900, "method": "codeContext/status", "params": {}}), None),
        ("response to nothing", frame({"jsonrpc": "2.0", "id": 123456, "result": {"x": 1}}), None),
        ("unknown notification", frame({"jsonrpc": "2.0", "method": "codeContext/whatever", "params": [1]}), None),
        ("cancel of nothing", frame({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "nope"}}), None),
        ("didSave outside", frame({"jsonrpc": "2.0", "method": "textDocument/didSave",
                                   "params": {"textDocument": {"uri": "file:///etc/passwd"}}}), None),
        ("didSave garbage", frame({"jsonrpc": "2.0", "method": "textDocument/didSave", "params": {"x": 1}}), None),
        # Broken headers: the LSP base protocol cannot resync inside a line, so each is followed
        # by a line break, after which the next well-formed message must be read.
        ("non-numeric Content-Length", b"Content-Length: abc\r\n\r\n{}\r\n", None),
        ("negative Content-Length", b"Content-Length: -5\r\n\r\n{}\r\n", None),
        ("no Content-Length", b"Content-Type: application/json\r\n\r\n{}\r\n", None),
        ("garbage line", b"hello there\r\n", None),
        ("Content-Length too short", b"Content-Length: 5\r\n\r\n" + b'{"jsonrpc": "2.0"}\r\n', None),
        ("Content-Length too long, padded", b"Content-Length: 200\r\n\r\n" + b'{"jsonrpc": "2.0"}'
         + b" " * 182, None),
    ]


def test_malformed_frames_leave_the_server_serving(served: tuple[RawServer, Path]) -> None:
    server, root = served
    replies = []
    for name, data, expected in bad_frames(root):
        server.responses.pop(900, None)
        server.send_raw(data)
        # The next well-formed request is answered, whatever came before it.
        status = server.call("codeContext/status", {}, timeout=15)
        assert "result" in status, (name, status)
        assert server.alive(), name
        if expected is not None:
            reply = server.wait_response(900, timeout=15)
            assert reply["error"]["code"] == expected, (name, reply)
        replies.append(name)
    # Bytes arriving one at a time and many requests in flight at once are fine too.
    for byte in frame({"jsonrpc": "2.0", "id": 901, "method": "codeContext/status", "params": {}}):
        server.send_raw(bytes([byte]))
    assert "result" in server.wait_response(901, timeout=15)
    ids = [server.send_request("codeContext/search", {"query": f"retry {i}", "limit": 3}) for i in range(50)]
    assert all("result" in server.wait_response(i, timeout=60) for i in ids)
    assert len(replies) == len(bad_frames(root))
    assert_serving(server, root)


CLI_CASES = """
import contextlib, io, json, sys
from lsp_server.cli import main
out = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""


def test_cli_rejects_bad_input_with_one_line(tmp_path: Path) -> None:
    """The CLI's share of malformed input: exit 2 and one line on stderr, never a traceback."""
    import json
    import subprocess

    env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path / "cache"), "CODE_CONTEXT_PROVIDER": "hash"}
    cases = [["search", str(FIXTURE), "retry", "--exclude", "\\"], ["search", str(FIXTURE), "retry", "--include", "\\"],
             ["search", str(FIXTURE), "retry", "--limit", "0"], ["search", str(FIXTURE), "", "--no-sync"],
             ["index", str(tmp_path / "missing")], ["search", str(FIXTURE), "x", "--mode", "fuzzy"],
             ["search", str(FIXTURE), "x" * 5000], ["verify"], ["index", str(FIXTURE), "--max-file-size-kb", "-1"]]
    done = subprocess.run([sys.executable, "-c", CLI_CASES, json.dumps(cases)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for args, (code, err) in zip(cases, json.loads(done.stdout.strip().splitlines()[-1])):
        assert code == 2, (args, err)
        assert err.startswith("code-context: error: ") and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "cache").exists()  # rejected before anything was opened
