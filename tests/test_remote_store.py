"""The same engine against a Milvus server: a real `milvus-lite server` on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsp_server.index import WorkspaceIndex
from lsp_server.search import search
from lsp_server.settings import parse
from lsp_server.sync import sync_workspace

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def milvus_server(tmp_path: Path):
    port = _free_port()
    exe = Path(sys.executable).with_name("milvus-lite")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(tmp_path / "milvus"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("milvus-lite server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_index_and_search_through_a_milvus_server(milvus_server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    settings, bad = parse({"embedding": {"provider": "hash"}, "store": {"uri": milvus_server}})
    assert bad == []
    index = WorkspaceIndex(root, settings)
    stats = sync_workspace(index)
    assert stats.error is None and stats.chunks > 0
    assert index.status().store_uri == milvus_server
    assert not (index.dir / "milvus.db").exists(), "no local store when a server is configured"
    results = search(index, "matrix multiply", limit=3)
    assert results[0].path == "native/matrix.rs"
    (root / "native" / "matrix.rs").unlink()
    sync_workspace(index)
    assert all(r.path != "native/matrix.rs" for r in search(index, "matrix multiply", limit=5))
    index.close()


def test_unreachable_server_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    uri = f"http://127.0.0.1:{_free_port()}"
    settings, _ = parse({"embedding": {"provider": "hash"}, "store": {"uri": uri}})
    index = WorkspaceIndex(root, settings)
    stats = sync_workspace(index)
    assert stats.error is not None and uri in stats.error
    assert index.state.state == "error"
