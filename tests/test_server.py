"""The language server as a real process, driven over stdio (and TCP) by pytest-lsp.

Every test starts `python -m lsp_server` with the hash embedder and a private cache, so
results are deterministic and nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

pytestmark = pytest.mark.timeout(60)

HASH = {"embedding": {"provider": "hash"}}
SERVER = [sys.executable, "-m", "lsp_server"]
# fetch_with_retry in tests/fixtures/workspace/src/http_client.py: lines 18-29, 0-based 17-28.
FETCH_FIRST, FETCH_LAST = 17, 28

Start = Callable[..., Awaitable[LanguageClient]]


def uri(path: Path) -> str:
    return path.as_uri()


@pytest_asyncio.fixture
async def start() -> AsyncIterator[Start]:
    """Starts servers on demand and shuts every one down after the test."""
    clients: list[LanguageClient] = []

    async def _start(folders: list[Path], init_options: Any = HASH, *, configuration: dict[str, Any] | None = None,
                     capabilities: lsp.ClientCapabilities | None = None, command: list[str] = SERVER) -> LanguageClient:
        client = make_test_lsp_client()
        client.registrations = []  # type: ignore[attr-defined]
        if configuration is not None:
            client.set_configuration(configuration)

        @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
        def register(params: lsp.RegistrationParams) -> None:
            client.registrations.extend(params.registrations)  # type: ignore[attr-defined]

        await client.start_io(*command)
        clients.append(client)
        await client.initialize_session(lsp.InitializeParams(
            capabilities=capabilities or client_capabilities("visual-studio-code"),
            workspace_folders=[lsp.WorkspaceFolder(uri(f), f.name) for f in folders],
            initialization_options=init_options))
        return client

    yield _start
    for client in clients:
        await client.shutdown_session()
        await client.stop()


async def request(client: LanguageClient, method: str, params: Any = None, msg_id: str | None = None) -> Any:
    return plain(await client.protocol.send_request_async(method, params, msg_id))


def plain(value: Any) -> Any:
    """pygls hands results of unknown methods over as namedtuples; tests compare JSON."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


async def status(client: LanguageClient) -> list[dict[str, Any]]:
    return (await request(client, "codeContext/status", {}))["folders"]


async def wait_idle(client: LanguageClient, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = await status(client)
        if folders and all(f["state"] == "idle" for f in folders):
            return folders
        await asyncio.sleep(0.1)
    raise AssertionError(f"still indexing after {timeout} s: {folders}")


async def search(client: LanguageClient, query: str, **params: Any) -> dict[str, Any]:
    return await request(client, "codeContext/search", {"query": query, **params})


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> float:
    """Seconds until check() holds; fails after timeout."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
def second(tmp_path: Path, workspace: Path) -> Path:
    root = tmp_path / "second"
    shutil.copytree(workspace, root)
    return root


async def test_two_folders_index_with_progress_and_answer(start: Start, workspace: Path, second: Path) -> None:
    client = await start([workspace, second])
    folders = await wait_idle(client)

    assert [f["uri"] for f in folders] == [uri(workspace), uri(second)]
    for f in folders:
        assert f["files"] == f["indexedFiles"] == 7
        assert f["chunks"] > 0 and f["pendingChunks"] == 0
        assert f["embedding"]["provider"] == "hash" and f["embedding"]["dimension"] > 0
        assert f["store"]["uri"] and "lastError" not in f
    # One progress per folder: create, then begin ... report ... end.
    assert len(client.progress_reports) == 2
    for reports in client.progress_reports.values():
        assert [type(r) for r in (reports[0], reports[-1])] == [lsp.WorkDoneProgressBegin, lsp.WorkDoneProgressEnd]
        middle = [r for r in reports if isinstance(r, lsp.WorkDoneProgressReport)]
        assert middle and any("/7 files" in (r.message or "") for r in middle)
        assert [r.percentage for r in middle] == sorted(r.percentage for r in middle)
    # The client was asked to watch files.
    assert [r.method for r in client.registrations] == ["workspace/didChangeWatchedFiles"]  # type: ignore[attr-defined]

    answer = await search(client, "retry failed http requests")
    assert answer["partial"] is False
    top = answer["results"][0]
    assert top["uri"] in (uri(workspace / "src/http_client.py"), uri(second / "src/http_client.py"))
    assert top["range"]["start"]["line"] <= FETCH_FIRST and top["range"]["end"]["line"] > FETCH_LAST
    assert top["range"]["start"]["character"] == top["range"]["end"]["character"] == 0
    assert top["language"] == "python" and "def fetch_with_retry" in top["content"]
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    roots = {root for r in answer["results"] for root in (workspace, second) if r["uri"].startswith(uri(root) + "/")}
    assert roots == {workspace, second}  # merged across folders

    only_second = await search(client, "retry failed http requests", workspaceFolder=uri(second), limit=3)
    assert 0 < len(only_second["results"]) <= 3
    assert all(r["uri"].startswith(uri(second) + "/") for r in only_second["results"])

    only_ts = await search(client, "invoices", languages=["typescript"], mode="keyword")
    assert only_ts["results"] and all(r["language"] == "typescript" for r in only_ts["results"])
    assert not (await search(client, "retry", include=["native/**"], mode="keyword"))["results"]

    # similar: code like fetch_with_retry, leaving fetch_with_retry itself out.
    target = uri(workspace / "src/http_client.py")
    like = await request(client, "codeContext/similar", {
        "uri": target, "range": {"start": {"line": FETCH_FIRST, "character": 0},
                                 "end": {"line": FETCH_LAST + 1, "character": 0}}, "limit": 5})
    assert 0 < len(like["results"]) <= 5
    assert not any(r["uri"] == target and r["range"]["start"]["line"] <= FETCH_LAST < r["range"]["end"]["line"]
                   for r in like["results"])

    symbols = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="fetch_with_retry"))
    assert symbols and symbols[0].name == "fetch_with_retry"
    assert symbols[0].location.uri.endswith("/src/http_client.py")
    assert symbols[0].location.range.start.line == FETCH_FIRST
    assert await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="")) == []

    outline = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(lsp.TextDocumentIdentifier(target)))
    by_name = {s.name: s for s in outline}
    assert {"RetryPolicy", "fetch_with_retry", "parse_header"} <= set(by_name)
    assert {c.name for c in by_name["RetryPolicy"].children or []} >= {"__init__", "delay"}


async def test_saved_and_deleted_files_reach_the_index(start: Start, workspace: Path) -> None:
    client = await start([workspace])
    await wait_idle(client)
    path = workspace / "src" / "http_client.py"
    path.write_text(path.read_text() + "\n\ndef reconcile_ledger_balances(ledger):\n"
                    "    \"\"\"Reconcile ledger balances against the bank statement.\"\"\"\n"
                    "    return sum(entry.amount for entry in ledger)\n")
    client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri(path))))

    async def found() -> bool:
        results = (await search(client, "reconcile ledger balances"))["results"]
        return any(r["uri"] == uri(path) and "def reconcile_ledger_balances" in r["content"]
                   and r["range"]["start"]["line"] <= 36 < r["range"]["end"]["line"] for r in results)

    assert await eventually(found) < 1.5  # 1 s, plus slack for a loaded test machine

    cart = workspace / "web" / "cart.js"

    async def cart_results() -> list[dict[str, Any]]:
        answer = await search(client, "cart total price", mode="keyword", limit=100)
        return [r for r in answer["results"] if r["uri"] == uri(cart)]

    async def cart_gone() -> bool:
        return not await cart_results()

    assert not await cart_gone()
    cart.unlink()
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(uri(cart), lsp.FileChangeType.Deleted)]))
    await eventually(cart_gone)
    folder = (await status(client))[0]
    assert folder["indexedFiles"] == folder["files"] == 6


async def test_progress_cancel_reindex_and_clear(start: Start, workspace: Path, second: Path) -> None:
    client = await start([workspace, second])

    async def second_begun() -> bool:
        return any(isinstance(r, lsp.WorkDoneProgressBegin) and r.title == "Indexing second"
                   for reports in client.progress_reports.values() for r in reports)

    await eventually(second_begun)
    token = next(t for t, reports in client.progress_reports.items() if reports[0].title == "Indexing second")
    client.protocol.notify(lsp.WINDOW_WORK_DONE_PROGRESS_CANCEL, lsp.WorkDoneProgressCancelParams(token))
    kept, cancelled = await wait_idle(client)
    assert client.progress_reports[token][-1].message == "cancelled"
    assert kept["indexedFiles"] == 7 and cancelled["indexedFiles"] < 7

    assert await request(client, "codeContext/reindex", {"workspaceFolder": uri(second), "force": True}) == {
        "started": True}
    assert await request(client, "codeContext/reindex", {"workspaceFolder": uri(second)}) == {"started": False}
    kept, again = await wait_idle(client)
    assert again["indexedFiles"] == 7 and again["chunks"] == kept["chunks"] > 0

    assert await request(client, "codeContext/clearIndex", {"workspaceFolder": uri(second)}) == {}
    kept, cleared = await status(client)
    assert cleared["chunks"] == cleared["indexedFiles"] == 0 and kept["chunks"] > 0
    answer = await search(client, "retry failed http requests")
    assert answer["results"] and all(r["uri"].startswith(uri(workspace) + "/") for r in answer["results"])

    assert await request(client, "codeContext/clearIndex", {}) == {}
    assert all(f["chunks"] == 0 for f in await status(client))
    assert await search(client, "retry failed http requests") == {"results": [], "partial": False}


BAD_SEARCHES: list[tuple[Any, str]] = [
    ({}, "query"), ({"query": ""}, "query"), ({"query": "   "}, "query"), ({"query": "x" * 1001}, "query"),
    ({"query": 5}, "query"), ({"query": "x", "limit": 0}, "limit"), ({"query": "x", "limit": 101}, "limit"),
    ({"query": "x", "limit": "5"}, "limit"), ({"query": "x", "limit": True}, "limit"),
    ({"query": "x", "mode": "fuzzy"}, "mode"), ({"query": "x", "include": "src"}, "include"),
    ({"query": "x", "languages": [1]}, "languages"), ({"query": "x", "workspaceFolder": 3}, "workspaceFolder"),
    ({"query": "x", "workspaceFolder": "file:///not/open"}, "workspaceFolder"), (["x"], "params"),
]


async def test_bad_or_cancelled_requests_leave_the_server_serving(start: Start, workspace: Path,
                                                                  tmp_path: Path) -> None:
    client = await start([workspace])
    await wait_idle(client)
    outside = tmp_path / "outside.py"
    outside.write_text("def secret():\n    return 42\n")
    (workspace / "link.py").symlink_to(outside)
    lines = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}
    cases: list[tuple[str, Any, str]] = [("codeContext/search", p, f) for p, f in BAD_SEARCHES] + [
        ("codeContext/similar", {"uri": uri(outside), "range": lines}, "uri"),
        ("codeContext/similar", {"uri": uri(workspace) + "/src/../../outside.py", "range": lines}, "uri"),
        ("codeContext/similar", {"uri": uri(workspace / "link.py"), "range": lines}, "uri"),
        ("codeContext/similar", {"uri": "untitled:Untitled-1", "range": lines}, "uri"),
        ("codeContext/similar", {"uri": uri(workspace / "src/http_client.py")}, "range"),
        ("codeContext/similar", {"uri": uri(workspace / "src/http_client.py"),
                                 "range": {"start": {"line": 5, "character": 0}, "end": {"line": 1, "character": 0}}},
         "range"),
        ("codeContext/similar", {"uri": uri(workspace / "src/http_client.py"), "range": lines, "limit": 500}, "limit"),
        ("codeContext/reindex", {"workspaceFolder": "file:///not/open"}, "workspaceFolder"),
        ("codeContext/reindex", {"force": "yes"}, "force"),
        ("codeContext/clearIndex", {"workspaceFolder": 3}, "workspaceFolder"),
    ]
    for method, params, field in cases:
        with pytest.raises(JsonRpcInvalidParams) as caught:
            await request(client, method, params)
        assert caught.value.code == -32602
        assert caught.value.message.startswith(field), (method, params, caught.value.message)
        assert len(await status(client)) == 1  # still serving

    # $/cancelRequest right behind each search: some are cancelled (-32800), the rest answered.
    pending = []
    for i in range(40):
        msg_id = f"search-{i}"
        pending.append(asyncio.ensure_future(request(client, "codeContext/search", {"query": "retry"}, msg_id)))
        await asyncio.sleep(0)  # the request is written
        client.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id=msg_id))
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    assert any(isinstance(o, JsonRpcRequestCancelled) and o.code == -32800 for o in outcomes)
    assert all(isinstance(o, (dict, JsonRpcRequestCancelled)) for o in outcomes)
    assert (await search(client, "retry failed http requests"))["results"]


async def test_invalid_settings_warn_and_configuration_wins(start: Start, workspace: Path) -> None:
    options = {"embedding": {"provider": "hash", "batchSize": 0}, "search": {"limit": 500, "mode": "keyword"},
               "bogus": 1}
    client = await start([workspace], options,
                         configuration={"codeContext": {"search": {"limit": 2}, "index": {"maxFileSizeKb": "big"}}},
                         command=[sys.executable, "-m", "lsp_server.cli", "serve"])
    await wait_idle(client)
    warnings = [m.message for m in client.messages if m.type == lsp.MessageType.Warning]
    assert len(warnings) == 1
    for key in ("embedding.batchSize", "bogus", "index.maxFileSizeKb"):
        assert key in warnings[0]
    # The configuration's limit 2 replaced the bad 500; keyword mode stays from initializationOptions.
    assert len((await search(client, "retry"))["results"]) == 2


async def test_configuration_changes_reopen_the_index(start: Start, workspace: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = await start([workspace], {"embedding": {"provider": "openai"}}, configuration={"codeContext": {}})

    async def folder_is(state: str, dimension: int | None = None) -> bool:
        folder = (await status(client))[0]
        return folder["state"] == state and dimension in (None, folder["embedding"]["dimension"])

    await eventually(lambda: folder_is("error"))  # no API key: the folder says so, the server goes on
    assert "OPENAI_API_KEY" in (await status(client))[0]["lastError"]
    assert any("OPENAI_API_KEY" in m.message for m in client.messages if m.type == lsp.MessageType.Error)

    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
        settings={"codeContext": {"embedding": {"provider": "hash"}}}))
    await eventually(lambda: folder_is("idle", 256))
    before = (await status(client))[0]
    assert before["indexedFiles"] == 7 and before["chunks"] > 0

    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
        settings={"codeContext": {"embedding": {"provider": "hash", "dimensions": 64}}}))
    await eventually(lambda: folder_is("idle", 64))
    assert (await status(client))[0]["chunks"] == before["chunks"]
    assert (await search(client, "retry failed http requests", mode="semantic"))["results"]


async def test_redaction_is_reported_and_turning_it_off_reindexes(start: Start, workspace: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from secret_fixtures import cases

    case = next(c for c in cases() if c.name == "aws")
    (workspace / "aws.py").write_text(case.text)
    client = await start([workspace], HASH, configuration={"codeContext": {}})
    folder = (await wait_idle(client))[0]
    assert (folder["redactions"], folder["redactedFiles"]) == (2, 1)
    top = (await search(client, "upload release artifacts", mode="keyword"))["results"][0]
    assert top["uri"] == uri(workspace / "aws.py") and "[REDACTED:aws-access-key]" in top["content"]
    assert not any(secret in top["content"] for secret in case.secrets)

    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
        settings={"codeContext": {"index": {"redactSecrets": False}}}))

    async def stored_as_is() -> bool:
        folder = (await status(client))[0]
        if folder["state"] != "idle" or folder["redactions"]:
            return False
        hits = (await search(client, "upload release artifacts", mode="keyword"))["results"]
        return bool(hits) and case.secrets[0] in hits[0]["content"]
    await eventually(stored_as_is, timeout=30)


async def test_without_client_watching_a_watchdog_sees_deletes(start: Start, workspace: Path, second: Path) -> None:
    bare = lsp.ClientCapabilities(workspace=lsp.WorkspaceClientCapabilities(workspace_folders=True))
    client = await start([workspace], capabilities=bare)
    await wait_idle(client)
    assert not client.progress_reports and not client.registrations  # type: ignore[attr-defined]

    (workspace / "web" / "cart.js").unlink()
    shutil.rmtree(workspace / "native")

    async def gone() -> bool:
        answer = await search(client, "cart greeter matrix", mode="keyword", limit=100)
        return not any("/web/cart.js" in r["uri"] or "/native/" in r["uri"] for r in answer["results"])

    await eventually(gone)
    assert (await status(client))[0]["indexedFiles"] == 4

    # A folder added later is indexed, and leaves the status when removed.
    client.workspace_did_change_workspace_folders(lsp.DidChangeWorkspaceFoldersParams(
        lsp.WorkspaceFoldersChangeEvent(added=[lsp.WorkspaceFolder(uri(second), "second")], removed=[])))
    folders = await wait_idle(client)
    assert [f["uri"] for f in folders] == [uri(workspace), uri(second)] and folders[1]["indexedFiles"] == 7
    client.workspace_did_change_workspace_folders(lsp.DidChangeWorkspaceFoldersParams(
        lsp.WorkspaceFoldersChangeEvent(added=[], removed=[lsp.WorkspaceFolder(uri(workspace), "workspace")])))
    assert [f["uri"] for f in await status(client)] == [uri(second)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_tcp_binds_loopback_and_logs_to_file(workspace: Path, tmp_path: Path) -> None:
    port, log_file = _free_port(), tmp_path / "server.log"
    server = await asyncio.create_subprocess_exec(
        *SERVER, "--tcp", "--port", str(port), "--log-file", str(log_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    client = make_test_lsp_client()
    try:
        await eventually(lambda: _listening(log_file, port))
        await client.start_tcp("127.0.0.1", port)
        await client.initialize_session(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=uri(workspace), initialization_options=HASH))
        folders = await wait_idle(client)
        assert folders[0]["uri"] == uri(workspace) and folders[0]["indexedFiles"] == 7
        await client.shutdown_session()
        stdout, _ = await asyncio.wait_for(server.communicate(), 20)
        assert server.returncode == 0 and stdout == b""
    finally:
        await client.stop()
        if server.returncode is None:
            server.kill()
            await server.wait()
    assert "indexing" in log_file.read_text()


async def _listening(log_file: Path, port: int) -> bool:
    return log_file.exists() and f"listening on 127.0.0.1:{port}" in log_file.read_text()


async def test_stdout_carries_only_protocol(workspace: Path) -> None:
    """A raw exchange: every byte on stdout belongs to a framed JSON-RPC message (a stray
    print would break the framing), and a client may call before indexing finishes."""
    proc = await asyncio.create_subprocess_exec(*SERVER, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)

    def frame(msg: dict[str, Any]) -> bytes:
        body = json.dumps(msg).encode()
        return f"Content-Length: {len(body)}\r\n\r\n".encode() + body

    async def answer(msg_id: int) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            headers = {}
            while (line := await proc.stdout.readline()) != b"\r\n":
                name, _, value = line.decode("ascii").partition(": ")
                assert name in ("Content-Length", "Content-Type"), line
                headers[name] = value.strip()
            message = json.loads(await proc.stdout.readexactly(int(headers["Content-Length"])))
            if message.get("id") == msg_id:
                return message

    assert proc.stdin is not None
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": uri(workspace), "capabilities": {}, "initializationOptions": HASH}}))
    assert "capabilities" in (await answer(1))["result"]
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "codeContext/search", "params": {"query": "retry"}}))
    assert (await answer(2))["result"]["partial"] is True  # the first index is still being built
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 3, "method": "codeContext/status"}))
    assert (await answer(3))["result"]["folders"][0]["uri"] == uri(workspace)
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 4, "method": "shutdown"}))
    assert (await answer(4))["result"] is None
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    await asyncio.wait_for(proc.wait(), 30)


# -- the OpenAI-compatible provider, end to end ------------------------------------------------------


async def test_openai_provider_end_to_end(start: Start, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server embeds through a real HTTP endpoint speaking the OpenAI protocol; a key that
    stops working is one error naming the fix, and edits wait, pending, until it works again."""
    from fake_openai_server import FakeOpenAIServer

    key = "sk-e2e-canary-4711"
    monkeypatch.setenv("CC_E2E_EMBED_KEY", key)  # inherited by the server process
    with FakeOpenAIServer(dimension=256, semantic=True, api_key=key) as fake:
        host = f"127.0.0.1:{fake.port}"
        options = {"embedding": {"provider": "openai", "baseUrl": fake.base_url, "model": "fake-embed",
                                 "apiKeyEnv": "CC_E2E_EMBED_KEY", "maxRetries": 1, "timeout": 5}}
        client = await start([workspace], options)
        folder = (await wait_idle(client))[0]
        assert folder["indexedFiles"] == 7 and folder["chunks"] > 0 and folder["pendingChunks"] == 0
        assert folder["embedding"]["provider"] == "openai" and folder["embedding"]["model"] == "fake-embed"
        assert folder["embedding"]["dimension"] == 256
        # Status names at most the endpoint's host, never its path or the key.
        assert folder["embedding"]["baseUrl"] == host  # the host, never the path or the key
        assert fake.requests and all(r.authorization == f"Bearer {key}" and r.model == "fake-embed"
                                     for r in fake.requests)
        answer = await search(client, "retry failed http requests", mode="semantic", limit=3)
        top = answer["results"][0]
        assert top["uri"] == uri(workspace / "src/http_client.py") and "def fetch_with_retry" in top["content"]

        fake.api_key = "sk-rotated"  # the key in the environment no longer works
        path = workspace / "src" / "billing.py"
        path.write_text("def reconcile_ledger_balances(ledger):\n"
                        "    \"\"\"Reconcile ledger balances against the bank statement.\"\"\"\n"
                        "    return sum(entry.amount for entry in ledger)\n")
        client.text_document_did_save(lsp.DidSaveTextDocumentParams(lsp.TextDocumentIdentifier(uri(path))))

        async def saved_but_pending() -> bool:
            results = (await search(client, "reconcile ledger balances", mode="keyword"))["results"]
            return any(r["uri"] == uri(path) for r in results) and (await status(client))[0]["pendingChunks"] > 0

        await eventually(saved_but_pending)  # searchable by its words at once, its vector pending
        errors_before = [m for m in client.messages if m.type == lsp.MessageType.Error]
        assert await request(client, "codeContext/reindex", {}) == {"started": True}

        async def settled() -> bool:
            return (await status(client))[0]["state"] in ("idle", "error")

        await asyncio.sleep(0.2)
        await eventually(settled)
        folder = (await status(client))[0]
        assert folder["state"] == "error" and folder["pendingChunks"] >= 1, folder
        assert folder["indexedFiles"] == 8 and folder["chunks"] > folder["pendingChunks"]
        assert "authentication failed (401)" in folder["lastError"] and host in folder["lastError"]
        await asyncio.sleep(0.3)  # a second message, if any, would have arrived by now
        errors = [m.message for m in client.messages if m.type == lsp.MessageType.Error][len(errors_before):]
        assert len(errors) == 1, errors
        assert "authentication failed (401)" in errors[0] and "set a valid key in $CC_E2E_EMBED_KEY" in errors[0]
        assert any(r.fault is None and r.authorization == f"Bearer {key}" for r in fake.requests[-2:])

        fake.api_key = key  # fixed: the next sync embeds what waited
        assert await request(client, "codeContext/reindex", {}) == {"started": True}
        folder = (await wait_idle(client))[0]
        assert folder["pendingChunks"] == 0 and "lastError" not in folder
        answer = await search(client, "reconcile ledger balances", mode="semantic", limit=1)
        assert answer["results"][0]["uri"] == uri(path)
        seen = repr(await status(client)) + repr(client.messages) + repr(client.log_messages)
    assert key not in seen and "/v1" not in repr(folder)


DECORATED_FILES = {
    "ledger.py": "import functools\n\n\nclass Account:\n    @property\n    def balance_total(self):\n        return 1\n\n"
                 "    @classmethod\n    @functools.lru_cache(maxsize=None)\n    def from_ledger_rows(cls, rows):\n"
                 "        return cls()\n",
    "LedgerService.java": "@Deprecated\npublic class LedgerService {\n    @Override\n    @SuppressWarnings(\"x\")\n"
                          "    public String describeLedger() { return \"\"; }\n}\n",
    "LedgerRecord.cs": "[Serializable]\npublic class LedgerRecord {\n    [Obsolete(\"x\")]\n"
                       "    public void ArchiveRecord() {}\n}\n",
    "entry.rs": "#[derive(Debug)]\npub struct LedgerEntry { x: i32 }\n\n#[inline]\npub fn settle_entry() {}\n",
    "widget.ts": "@Component({selector: \"x\"})\nexport class LedgerWidget {\n  @Input()\n  renderLedger(): void {}\n}\n",
}


def name_range(text: str, name: str) -> lsp.Range:
    """Where a name is spelled in a file that holds it once (as a word)."""
    for line, content in enumerate(text.split("\n")):
        for prefix in (" ", "\t"):
            if f"{prefix}{name}" in content and not content.lstrip().startswith(("@", "#[", "[")):
                col = content.index(f"{prefix}{name}") + 1
                return lsp.Range(lsp.Position(line, col), lsp.Position(line, col + len(name)))
    raise AssertionError(name)


async def test_workspace_symbol_locations_are_the_names_of_decorated_definitions(start: Start, tmp_path: Path,
                                                                                 cache_dir: Path) -> None:
    root = tmp_path / "decorated"
    root.mkdir()
    for name, text in DECORATED_FILES.items():
        (root / name).write_text(text)
    client = await start([root])
    await wait_idle(client)
    expected = {"balance_total": "ledger.py", "from_ledger_rows": "ledger.py", "Account": "ledger.py",
                "LedgerService": "LedgerService.java", "describeLedger": "LedgerService.java",
                "LedgerRecord": "LedgerRecord.cs", "ArchiveRecord": "LedgerRecord.cs",
                "LedgerEntry": "entry.rs", "settle_entry": "entry.rs",
                "LedgerWidget": "widget.ts", "renderLedger": "widget.ts"}
    for name, file in expected.items():
        found = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query=name))
        assert found and found[0].name == name, (name, found)
        assert found[0].location.uri == uri(root / file)
        assert found[0].location.range == name_range(DECORATED_FILES[file], name), name

    # The outline keeps the whole definition, decorators included, and selects the name.
    outline = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(lsp.TextDocumentIdentifier(uri(root / "ledger.py"))))
    method = next(c for c in outline[0].children or [] if c.name == "from_ledger_rows")
    assert method.range.start == lsp.Position(8, 4)  # the @classmethod line
    assert method.selection_range == name_range(DECORATED_FILES["ledger.py"], "from_ledger_rows")
