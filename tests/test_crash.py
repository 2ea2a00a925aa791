"""A crash or Ctrl-C during `index` leaves an index the next run completes, without duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _make_workspace(root: Path, files: int = 240) -> None:
    for i in range(files):
        pkg = root / f"pkg{i % 12}"
        pkg.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(
            f"def handler_{i}_{j}(request, options=None):\n"
            f"    value = request.get('field_{i}_{j}')\n"
            f"    if value is None:\n        raise KeyError('missing field_{i}_{j} in request')\n"
            f"    return [transform_{j}(v) for v in value if v]\n" for j in range(12))
        (pkg / f"module_{i}.py").write_text(body)


def _cli(env: dict[str, str], *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lsp_server.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600, **kwargs)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_index_is_completed_by_the_next_run(tmp_path: Path, sig: signal.Signals) -> None:
    root = tmp_path / "ws"
    _make_workspace(root)
    for attempt in range(3):
        env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path / f"cache{attempt}"),
               "CODE_CONTEXT_PROVIDER": "hash", "PYTHONUNBUFFERED": "1"}
        if _interrupt_mid_run(root, env, tmp_path / f"out{attempt}", sig):
            break
    else:
        pytest.fail("every run finished before it could be interrupted; make the workspace larger")

    again = _cli(env, "index", str(root))
    assert again.returncode == 0, again.stderr
    verified = _cli(env, "verify", str(root), "--no-sync")
    assert verified.returncode == 0, verified.stdout
    assert "index matches the files" in verified.stdout
    assert "240 files" in verified.stdout


def _interrupt_mid_run(root: Path, env: dict[str, str], out: Path, sig: signal.Signals) -> bool:
    """Freeze `index` once some files are in, and interrupt it if it has not yet finished.

    The run prints its summary (unbuffered) only when the sync returns, so an empty stdout
    while the process is stopped means the signal lands mid-run. False when it came too late."""
    # Ctrl-C as from a terminal: a background job (CI) inherits SIGINT ignored, and Python then
    # leaves it ignored. A handler, unlike SIG_IGN, is reset to the default across exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with out.open("w") as stdout:
            proc = subprocess.Popen([sys.executable, "-m", "lsp_server.cli", "index", str(root)], env=env,
                                    stdout=stdout, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    cache = Path(env["CODE_CONTEXT_CACHE_DIR"])
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        state = next(cache.glob("workspaces/*/state.db"), None)
        if state is not None and _done_files(state) >= 64:
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGSTOP)
    if out.read_text():
        proc.kill()
        proc.wait(timeout=60)
        return False
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=60)
    assert proc.returncode != 0, "the run was interrupted, not finished"
    assert not out.read_text(), "an interrupted run prints no summary"
    return True


def _done_files(state: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(state, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files WHERE state='done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_verify_reports_orphans_stale_and_missing_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    from lsp_server.index import WorkspaceIndex
    from lsp_server.settings import parse
    from lsp_server.store import Deletion
    from lsp_server.sync import sync_workspace
    from lsp_server.verify import verify

    root = tmp_path / "ws"
    _make_workspace(root, files=3)
    index = WorkspaceIndex(root, parse({"embedding": {"provider": "hash"}})[0])
    sync_workspace(index)
    assert verify(index).ok
    # Damage the store behind the engine's back: a chunk of a deleted file, and a stale chunk.
    orphan = index.store.row(id="orphan", path="gone.py", language="python", start_line=1, end_line=1, symbol="",
                             kind=0, content="x", search_text="x", vector=None)
    stale = index.store.row(id="stale", path="pkg0/module_0.py", language="python", start_line=1, end_line=2,
                            symbol="", kind=0, content="old text", search_text="old text", vector=None)
    index.store.replace(Deletion(), [orphan, stale])
    (root / "pkg1" / "module_1.py").unlink()
    diff = verify(index)
    assert not diff.ok
    assert ("gone.py", "orphan") in diff.extra and ("pkg0/module_0.py", "stale") in diff.extra
    assert {p for p, _ in diff.extra} == {"gone.py", "pkg0/module_0.py", "pkg1/module_1.py"}
    assert diff.symbol_orphans == ["pkg1/module_1.py"]
    assert diff.missing == []
    sync_workspace(index)
    index.store.delete(Deletion(paths=["gone.py", "pkg0/module_0.py"]))
    diff = verify(index)
    assert {p for p, _ in diff.missing} == {"pkg0/module_0.py"} and not diff.extra
    assert diff.search_index == []
    # Damage the in-memory search index behind the store's back: a row it lost, one it invented.
    lost = next(i for i, (p, _) in index.store.memory.entries().items() if p == "pkg2/module_2.py")
    index.store.memory.remove(ids=[lost])
    index.store.memory.add([{**orphan, "id": "invented"}])
    diff = verify(index)
    assert diff.search_index == sorted([("pkg2/module_2.py", lost), ("gone.py", "invented")]) and not diff.ok
    index.close()
