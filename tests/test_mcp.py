"""`code-context mcp` driven by the MCP SDK's own stdio client: alone, and beside a language server."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from lsp_raw import RawServer
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from test_reliability import FIXTURE

TOOLS = {"search_code", "find_similar", "find_symbol", "index_status", "reindex"}


@asynccontextmanager
async def mcp_session(root: Path, cache: Path, *extra: str) -> AsyncIterator[ClientSession]:
    env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(cache), "CODE_CONTEXT_PROVIDER": "hash"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "lsp_server.cli", "mcp", str(root), *extra],
                                   env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, name: str, **arguments: Any) -> Any:
    return await session.call_tool(name, arguments)


async def wait_idle(session: ClientSession) -> dict[str, Any]:
    result = await call(session, "reindex", wait=True)
    assert not result.is_error, result.content
    assert result.structured_content["finished"] is True
    return result.structured_content["status"]


def copy_workspace(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    return root, tmp_path / "cache"


async def test_tools_alone(tmp_path: Path) -> None:
    root, cache = copy_workspace(tmp_path)
    async with mcp_session(root, cache) as session:
        tools = (await session.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        by_name = {t.name: t for t in tools}
        for name in ("search_code", "find_similar", "find_symbol", "index_status"):
            assert by_name[name].annotations.read_only_hint is True
        assert "grep" in by_name["search_code"].description and "partial" in by_name["search_code"].description
        assert set(by_name["search_code"].input_schema["properties"]) == {
            "query", "limit", "mode", "include", "exclude", "languages"}

        # Tools answer while indexing; the first call may be partial.
        first = await call(session, "search_code", query="retry failed http requests")
        assert not first.is_error and isinstance(first.structured_content["partial"], bool)

        status = await wait_idle(session)
        assert status["state"] == "idle" and status["indexed_files"] == 7 and status["owner"]["face"] == "mcp"

        found = await call(session, "search_code", query="retry failed http requests", limit=3)
        data = found.structured_content
        assert data["partial"] is False and data["total_files"] == 7
        top = data["results"][0]
        assert top["path"] == "src/http_client.py" and "fetch_with_retry" in top["content"]
        assert 1 <= top["start_line"] <= top["end_line"]
        assert set(top) == {"path", "start_line", "end_line", "score", "language", "symbol", "content", "clipped"}
        assert found.content[0].text.startswith("3 results") and "src/http_client.py:" in found.content[0].text

        only_rust = await call(session, "search_code", query="matrix multiply", languages=["rust"], mode="keyword")
        assert {r["language"] for r in only_rust.structured_content["results"]} == {"rust"}
        excluded = await call(session, "search_code", query="retry", exclude=["src/**"])
        assert all(not r["path"].startswith("src/") for r in excluded.structured_content["results"])

        symbols = (await call(session, "find_symbol", query="fetch_with_retry")).structured_content["symbols"]
        assert symbols[0]["name"] == "fetch_with_retry" and symbols[0]["path"] == "src/http_client.py"
        assert symbols[0]["kind"] == "function" and symbols[0]["start_line"] >= 1

        similar = await call(session, "find_similar", path="src/http_client.py", start_line=top["start_line"],
                             end_line=top["end_line"])
        assert not similar.is_error
        assert all(not (r["path"] == "src/http_client.py" and r["start_line"] <= top["end_line"]
                        and top["start_line"] <= r["end_line"]) for r in similar.structured_content["results"])


BAD_CALLS = [
    ("search_code", {}, "query"),
    ("search_code", {"query": ""}, "query"),
    ("search_code", {"query": "   "}, "query"),
    ("search_code", {"query": "x" * 1001}, "query"),
    ("search_code", {"query": "retry", "limit": 0}, "limit"),
    ("search_code", {"query": "retry", "limit": 51}, "limit"),
    ("search_code", {"query": "retry", "mode": "fuzzy"}, "mode"),
    ("search_code", {"query": "retry", "include": ["!"]}, "include"),
    ("search_code", {"query": "retry", "exclude": ["a\\"]}, "exclude"),
    ("find_similar", {"path": "../outside.py", "start_line": 1, "end_line": 2}, "path"),
    ("find_similar", {"path": "/etc/passwd", "start_line": 1, "end_line": 2}, "path"),
    ("find_similar", {"path": "src/http_client.py", "start_line": 5, "end_line": 2}, "end_line"),
    ("find_symbol", {"query": ""}, "query"),
]


async def test_bad_arguments_are_tool_errors_naming_the_argument(tmp_path: Path) -> None:
    root, cache = copy_workspace(tmp_path)
    (tmp_path / "outside.py").write_text("def secret_outside():\n    return 1\n")
    async with mcp_session(root, cache) as session:
        await wait_idle(session)
        for name, arguments, field in BAD_CALLS:
            result = await session.call_tool(name, arguments)
            assert result.is_error, (name, arguments)
            assert field in result.content[0].text, (name, arguments, result.content[0].text)
        # Still answering afterwards.
        after = await call(session, "search_code", query="fetch with retry")
        assert not after.is_error and after.structured_content["results"]


async def test_beside_a_language_server(tmp_path: Path) -> None:
    root, cache = copy_workspace(tmp_path)
    with RawServer([root], cache_dir=cache) as server:
        server.wait_idle()
        async with mcp_session(root, cache) as session:
            status = (await call(session, "index_status")).structured_content
            assert status["owner"] == {"process_id": server.proc.pid, "face": "lsp"}
            for q in ("retry failed http requests", "matrix multiply", "render a table with borders"):
                ours = (await call(session, "search_code", query=q, limit=5)).structured_content["results"]
                theirs = server.search(q, limit=5)["results"]
                assert [(r["path"], r["start_line"], r["score"]) for r in ours] == [
                    (Path(t["uri"].removeprefix("file://")).relative_to(root).as_posix(),
                     t["range"]["start"]["line"] + 1, t["score"]) for t in theirs]
            bad = await session.call_tool("search_code", {"query": "retry", "limit": 500})
            assert bad.is_error and "limit" in bad.content[0].text
            assert (await call(session, "find_symbol", query="fetch_with_retry")).structured_content["symbols"]
        assert server.alive() and server.search("fetch with retry")["results"]


@pytest.mark.parametrize("argv", [["mcp", "/no/such/folder"]])
def test_mcp_bad_folder_exits_2(argv: list[str], tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "lsp_server.cli", *argv], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60, env={**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 2 and "no such folder" in out.stderr and out.stdout == ""


async def test_provider_down_search_code_answers_with_keywords_and_says_so(tmp_path: Path) -> None:
    from fake_openai_server import FakeOpenAIServer

    root, cache = copy_workspace(tmp_path)
    with FakeOpenAIServer(dimension=16) as provider:
        provider.api_key = "sk-good"  # the key below is rejected: 401 on every request
        env_key = {"CC_TEST_KEY": "sk-rejected"}
        os.environ.update(env_key)
        try:
            async with mcp_session(root, cache, "--provider", "openai", "--base-url", provider.base_url,
                                   "--model", "fake-embed", "--api-key-env", "CC_TEST_KEY") as session:
                status = await wait_idle(session)
                assert status["state"] == "error" and "401" in status["last_error"]
                result = await call(session, "search_code", query="fetch with retry", mode="semantic")
                assert not result.is_error, result.content
                data = result.structured_content
                assert data["results"] and data["results"][0]["path"] == "src/http_client.py"
                assert "keyword" in data["note"] and "semantic" in data["note"]
                assert "note: semantic search is unavailable" in result.content[0].text
                assert "sk-rejected" not in result.content[0].text
        finally:
            os.environ.pop("CC_TEST_KEY", None)
