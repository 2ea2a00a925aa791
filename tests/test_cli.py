"""The code-context command as a user runs it: real processes, real store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path / "cache"), "CODE_CONTEXT_PROVIDER": "hash"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    return root


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lsp_server.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_index_search_status(workspace: Path, env: dict[str, str]) -> None:
    out = run(env, "index", str(workspace))
    assert out.returncode == 0, out.stderr
    summary = out.stdout
    assert "files: 7" in summary and "embedded this run: " in summary and "seconds: " in summary
    again = run(env, "index", str(workspace))
    assert "embedded this run: 0" in again.stdout and "changed files: 0" in again.stdout

    out = run(env, "search", str(workspace), "retry failed http requests", "--limit", "3", "--no-sync")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("src/http_client.py:") and "fetch_with_retry" in first

    out = run(env, "search", str(workspace), "matrix multiply", "--json", "--mode", "keyword")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["path"] == "native/matrix.rs"
    assert set(rows[0]) == {"path", "start_line", "end_line", "score", "language", "symbol", "content"}
    assert rows[0]["language"] == "rust" and rows[0]["start_line"] >= 1

    out = run(env, "status", str(workspace))
    assert "7 indexed" in out.stdout and "hash" in out.stdout and "milvus.db" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["index", "/no/such/folder"], "no such folder"),
    (["search", "/no/such/folder", "x"], "no such folder"),
    (["search", "{ws}/README.md", "x"], "not a folder"),
    (["search", "{ws}", ""], "query"),
    (["search", "{ws}", "   "], "query"),
    (["search", "{ws}", "x", "--limit", "0"], "limit"),
    (["search", "{ws}", "x", "--limit", "101"], "limit"),
    (["search", "{ws}", "x", "--limit", "ten"], "--limit"),
    (["search", "{ws}", "x", "--mode", "fuzzy"], "mode"),
    (["index", "{ws}", "--provider", "nope"], "--provider"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(workspace: Path, env: dict[str, str], args: list[str], message: str) -> None:
    out = run(env, *[a.replace("{ws}", str(workspace)) for a in args])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("code-context: error:") and message in lines[0], out.stderr
    assert out.stdout == ""


def test_bad_environment_setting_exits_2(workspace: Path, env: dict[str, str]) -> None:
    out = run({**env, "CODE_CONTEXT_BATCH_SIZE": "many"}, "index", str(workspace))
    assert out.returncode == 2 and "CODE_CONTEXT_BATCH_SIZE" in out.stderr
