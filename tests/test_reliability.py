"""GitHub issue 8: faults, hostile workspaces and crashes, with nothing lost.

Real processes and real stores throughout: the language server over stdio
(tests/lsp_raw.py), Milvus Lite on disk, a `milvus-lite server` on loopback that the
tests kill, and the OpenAI-compatible fake server on loopback. The hash embedder keeps
it deterministic and fast. docs/RELIABILITY.md summarises what each test covers.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from lsp_server import chunking, store_uri
from lsp_server.index import WorkspaceIndex, index_dir_for
from lsp_server.search import search
from lsp_server.settings import parse
from lsp_server.sync import read_and_chunk, sync_workspace
from lsp_server.verify import verify

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer, _make_handler  # noqa: E402
from lsp_raw import HASH, RawServer, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(240)

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"
MILVUS_LITE = Path(sys.executable).with_name("milvus-lite")


# -- helpers ---------------------------------------------------------------------------------


def hash_settings(**sections: Any):
    settings, bad = parse({"embedding": {"provider": "hash"}, **sections})
    assert bad == []
    return settings


def open_index(root: Path, **sections: Any) -> WorkspaceIndex:
    return WorkspaceIndex(root, hash_settings(**sections))


def close_index(index: WorkspaceIndex) -> None:
    """Close and stop this process's Milvus Lite server of it, so another process may open it."""
    uri = index.store_uri
    index.close()
    store_uri.release_local(uri)


def cli(cache: Path, *args: str, prefix: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(cache), "CODE_CONTEXT_PROVIDER": "hash", **env}
    return subprocess.run([*prefix, sys.executable, "-m", "lsp_server.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=300)


def assert_verified(cache: Path, root: Path, *extra: str) -> str:
    """`code-context verify PATH --no-sync` must exit 0: same chunks as a fresh index, nothing else."""
    done = cli(cache, "verify", str(root), "--no-sync", *extra)
    assert done.returncode == 0, f"verify failed:\n{done.stdout}\n{done.stderr[-2000:]}"
    assert "index matches the files" in done.stdout
    return done.stdout


def verified(root: Path, cache: Path, **sections: Any) -> Any:
    """verify() in this process, with no sync first, as `code-context verify --no-sync` does;
    the store is released afterwards so a server may open it again."""
    before = os.environ.get("CODE_CONTEXT_CACHE_DIR")
    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache)
    try:
        index = open_index(root, **sections)
        try:
            diff = verify(index)
        finally:
            close_index(index)
    finally:
        if before is None:
            os.environ.pop("CODE_CONTEXT_CACHE_DIR", None)
        else:
            os.environ["CODE_CONTEXT_CACHE_DIR"] = before
    assert diff.ok, diff
    return diff


def make_workspace(root: Path, files: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(files):
        pkg = root / f"pkg{i % 10}"
        pkg.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(
            f"def handler_{i}_{j}(request, options=None):\n"
            f"    value = request.get('field_{i}_{j}_{rng.randrange(10**6)}')\n"
            f"    if value is None:\n        raise KeyError('missing field_{i}_{j} in request')\n"
            f"    return [transform_{j}(v) for v in value if v]\n" for j in range(8))
        (pkg / f"module_{i}.py").write_text(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uri_path(uri: str) -> str:
    return unquote(urlparse(uri).path)


class MilvusServer:
    """`milvus-lite server` on loopback; stop() kills it (SIGKILL), start() brings it back."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MilvusServer:
        self.proc = subprocess.Popen([str(MILVUS_LITE), "server", "--data-dir", str(self.data_dir), "--host",
                                      "127.0.0.1", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                assert self.proc.poll() is None, "milvus-lite server exited at start"
                time.sleep(0.1)
        raise AssertionError("milvus-lite server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(path))
    return path


# -- hostile files ---------------------------------------------------------------------------

OUTSIDE_CANARY = "outside_canary_7f3a"


def build_hostile_workspace(base: Path) -> Path:
    """Every kind of file that has broken an indexer somewhere, next to two healthy ones."""
    root = base / "hostile"
    root.mkdir(parents=True)
    (root / "ok.py").write_text("def healthy_function(x):\n    return x + 1\n")
    (root / "src").mkdir()
    (root / "src" / "fine.ts").write_text("export function fineFunction(a: number): number {\n  return a * 2;\n}\n")
    rng = random.Random(8)
    (root / "binary.py").write_bytes(bytes(rng.randrange(256) for _ in range(4096)) + b"\0\0")
    (root / "bad_utf8.py").write_bytes(b"def broken_\xff\xfe_name():\n    return '\xc3\x28 invalid_utf8_marker'\n")
    (root / "utf16.py").write_bytes("def utf_sixteen():\n    return 1\n".encode("utf-16"))
    (root / "big.py").write_bytes(b"value_in_big_file = 1\n" * (50 * 1024 * 1024 // 22 + 1))  # 50 MB
    (root / "minified.js").write_text("".join(f"var v{i}=function(a){{return a+{i}}};" for i in range(20_000)))
    (root / "deep.js").write_text("".join(f"function level{i}() {{\n" for i in range(5000)) + "return 1;\n"
                                  + "}\n" * 5000)
    (root / "deep.c").write_text("int deep_c_main() " + "{\n" * 5000 + "}\n" * 5000)
    (root / "deep.py").write_text("deep_python = " + "(\n" * 5000 + "1" + ")\n" * 5000)
    os.symlink(".", root / "loop")
    os.symlink("b_link.py", root / "a_link.py")
    os.symlink("a_link.py", root / "b_link.py")
    outside = base / "outside_secret.py"
    outside.write_text(f"def {OUTSIDE_CANARY}():\n    return 'not in this workspace'\n")
    os.symlink(outside, root / "linked_outside.py")
    os.mkfifo(root / "pipe.py")  # reading it would block forever
    (root / "with space.py").write_text("def spaced_out_name():\n    return 'space'\n")
    (root / "ünïcødé").mkdir()
    (root / "ünïcødé" / "数据.py").write_text("def unicode_data_name():\n    return '数据'\n")
    (root / "new\nline.py").write_text("def newline_name():\n    pass\n")
    (root / "back\\slash.py").write_text("def back_slash_name():\n    pass\n")
    (root / "q\"uote's.py").write_text("def quoted_file_name():\n    pass\n")
    (root / os.fsdecode(b"bad\xffname.py")).write_text("def bad_bytes_name():\n    pass\n")
    return root


EXPECTED_SKIPS = {
    "binary.py": "binary",
    "utf16.py": "binary",
    "big.py": "larger than",
    "minified.js": "minified",
    "loop": "symlink into the workspace",
    "a_link.py": "cannot stat",
    "b_link.py": "cannot stat",
    "linked_outside.py": "symlink to outside the workspace",
    "new\nline.py": "newline in file name",
    "bad\\xffname.py": "not valid UTF-8",
}
EXPECTED_INDEXED = {"ok.py", "src/fine.ts", "bad_utf8.py", "deep.js", "deep.c", "deep.py", "with space.py",
                    "ünïcødé/数据.py", "back\\slash.py", "q\"uote's.py"}


def test_hostile_files_are_skipped_with_reasons_or_indexed(tmp_path: Path, cache: Path) -> None:
    root = build_hostile_workspace(tmp_path)
    index = open_index(root)
    started = time.monotonic()
    stats = sync_workspace(index)
    elapsed = time.monotonic() - started
    assert stats.error is None
    assert elapsed < 60, f"hostile workspace took {elapsed:.1f} s"
    for path, reason in EXPECTED_SKIPS.items():
        assert reason in stats.skipped.get(path, ""), (path, stats.skipped.get(path))
    assert set(index.files.all()) == EXPECTED_INDEXED
    assert "pipe.py" not in index.files.all()
    # Deep nesting is chunked and its symbols found, not skipped.
    assert len(index.store.chunks_of("deep.js")) > 1
    assert any(sym.name == "level4999" for sym in index.symbols.symbols_in("deep.js"))
    assert "invalid_utf8_marker" in "".join(c["content"] for c in index.store.chunks_of("bad_utf8.py"))
    # Odd names are stored and found under their own paths.
    for name, path in [("spaced_out_name", "with space.py"), ("unicode_data_name", "ünïcødé/数据.py"),
                       ("back_slash_name", "back\\slash.py"), ("quoted_file_name", "q\"uote's.py")]:
        assert search(index, name, limit=3, mode="keyword")[0].path == path
    assert not any(OUTSIDE_CANARY in r.content for r in search(index, OUTSIDE_CANARY, limit=20, mode="keyword"))
    diff = verify(index)
    assert diff.ok, diff
    # Deleting the odd names leaves no orphans: the path filters quote them right.
    for name in ["with space.py", "back\\slash.py", "q\"uote's.py", "ünïcødé/数据.py"]:
        (root / name).unlink()
    again = sync_workspace(index)
    assert again.error is None and again.deleted_files == 4
    diff = verify(index)
    assert diff.ok and diff.files == len(EXPECTED_INDEXED) - 4, diff
    close_index(index)


def test_parse_time_bound_falls_back_to_lines(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert chunking.PARSE_TIMEOUT_SECONDS <= 10
    root = tmp_path / "ws"
    root.mkdir()
    source = "".join(f"function f{i}(a, b) {{\n  return [a, {i}].map(x => x * b);\n}}\n" for i in range(12_000))
    (root / "huge.js").write_text(source)
    with pytest.raises(chunking.ParseTimeout):
        chunking.parse("javascript", source.encode(), timeout=1e-4)
    # With a bound nothing can meet, the file is still indexed: split by lines, in bounded time.
    monkeypatch.setattr(chunking.parse, "__defaults__", (1e-4,))
    index = open_index(root)
    started = time.monotonic()
    parsed, reason = read_and_chunk(index, "huge.js", "javascript")
    assert reason is None and parsed is not None
    assert time.monotonic() - started < 30
    assert parsed.chunks and parsed.symbols == []  # no tree: no symbols, but every line chunked
    assert parsed.chunks[0].start_line == 1 and parsed.chunks[-1].end_line == 36_000
    close_index(index)


def test_files_deleted_or_rewritten_while_indexing(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, 200)
    index = open_index(root)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
    doomed, rewritten, to_dir = files[-40:], files[-80:-40], files[-81]
    changed = []

    def churn(done: int, total: int, message: str) -> None:
        # After the first batch is in: files not read yet vanish, change or become folders.
        if done >= 64 and not changed:
            for rel in doomed:
                (root / rel).unlink()
            for rel in rewritten:
                (root / rel).write_text(f"def rewritten_{Path(rel).stem}():\n    return 'rewritten while indexing'\n")
            (root / to_dir).unlink()
            (root / to_dir).mkdir()
            changed.append(True)

    stats = sync_workspace(index, progress=churn)
    assert changed and stats.error is None
    for rel in doomed:
        assert "No such file" in stats.skipped[rel]
    assert to_dir in stats.skipped
    assert not set(doomed) & set(index.files.all())
    hit = search(index, f"rewritten_{Path(rewritten[0]).stem}", limit=1, mode="keyword")
    assert hit and hit[0].path == rewritten[0]
    diff = verify(index)
    assert diff.ok, diff
    # The next sync has nothing left to fix.
    again = sync_workspace(index)
    assert again.error is None and again.changed_files == 0 and again.deleted_files == 0
    close_index(index)


UNREADABLE_RUN = """
import json, sys
from pathlib import Path
from lsp_server.index import WorkspaceIndex
from lsp_server.settings import parse
from lsp_server.sync import sync_workspace
from lsp_server.verify import verify
index = WorkspaceIndex(Path(sys.argv[1]), parse({"embedding": {"provider": "hash"}})[0])
stats = sync_workspace(index)
diff = verify(index)
print(json.dumps({"error": stats.error, "skipped": stats.skipped, "files": stats.files, "ok": diff.ok,
                  "indexed": sorted(index.files.all())}))
"""


def test_unreadable_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    """chmod 000 does not stop root; as root the indexer runs with CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH dropped (setpriv), so permissions apply to it as to any user."""
    import json

    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    (root / "locked.py").write_text("def locked_away():\n    pass\n")
    (root / "locked.py").chmod(0)
    (root / "closed").mkdir()
    (root / "closed" / "inner.py").write_text("def inner_closed():\n    pass\n")
    (root / "closed").chmod(0)
    env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path / "cache")}
    try:
        done = subprocess.run([*prefix, sys.executable, "-c", UNREADABLE_RUN, str(root)], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        (root / "closed").chmod(0o755)
        (root / "locked.py").chmod(0o644)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is None and result["ok"]
    assert result["skipped"]["locked.py"] == "unreadable: Permission denied"
    assert result["skipped"]["closed"] == "unreadable directory: Permission denied"
    assert "locked.py" not in result["indexed"] and len(result["indexed"]) == 7


def test_hostile_workspace_through_the_server(tmp_path: Path) -> None:
    root = build_hostile_workspace(tmp_path)
    cache = tmp_path / "cache"
    with RawServer([root], cache_dir=cache) as server:
        folder = server.wait_idle(timeout=90)[0]
        assert folder["state"] == "idle" and "lastError" not in folder
        assert folder["indexedFiles"] == len(EXPECTED_INDEXED)
        hit = server.search("unicode_data_name", mode="keyword")["results"][0]
        assert uri_path(hit["uri"]) == str(root / "ünïcødé" / "数据.py")
        spaced = (root / "with space.py").as_uri()
        like = server.request("codeContext/similar", {"uri": spaced, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}})
        assert isinstance(like["results"], list)
        # A FIFO or a symlink loop named by the editor is refused, not read (which would block).
        for name in ("pipe.py", "a_link.py"):
            answer = server.call("codeContext/similar", {"uri": (root / name).as_uri(), "range": {
                "start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}}, timeout=10)
            assert answer.get("error", {}).get("code") == -32602, answer
        for name in ("pipe.py", "new\nline.py", "a_link.py"):
            server.notify("textDocument/didSave", {"textDocument": {"uri": (root / name).as_uri()}})
        time.sleep(1)
        assert server.alive()
        assert server.search("healthy_function", mode="keyword")["results"][0]["uri"] == (root / "ok.py").as_uri()


# -- crash consistency: SIGKILL the server -------------------------------------------------------


def kill_during_initial_index(root: Path, cache: Path, rng: random.Random) -> dict[str, Any]:
    """Start a server on an unindexed folder and SIGKILL it at a random point of its work."""
    server = RawServer([root], cache_dir=cache)
    phase = rng.choice(["files", "files", "embedding"])
    seen: dict[str, Any] = {}

    def reached() -> bool:
        folder = server.status()[0]
        seen.update(folder)
        if folder["state"] != "indexing" or not folder["files"]:
            return folder["state"] == "idle" and folder["pendingChunks"] == 0  # finished: too late
        if phase == "files":
            return folder["indexedFiles"] >= target * folder["files"]
        return folder["indexedFiles"] == folder["files"] and folder["pendingChunks"] <= target * folder["chunks"]

    target = rng.uniform(0.05, 0.95)
    wait_for(reached, timeout=120, poll=0.02, what="kill point")
    time.sleep(rng.uniform(0, 0.3))  # status moves at batch ends: land inside the next batch's writes too
    server.kill()
    return {"phase": phase, "target": round(target, 2), "indexed": seen.get("indexedFiles"),
            "pending": seen.get("pendingChunks"), "rows_in_flight": rows_in_flight(cache)}


def mutate(root: Path, rng: random.Random, count: int) -> list[str]:
    """Edit, delete and add files; returns a log line per change."""
    files = sorted(root.rglob("*.py"))
    changes = []
    for path in rng.sample(files, min(count, len(files))):
        action = rng.choice(["edit", "edit", "delete", "add"])
        if action == "edit":
            path.write_text(path.read_text() + f"\n\ndef edited_{rng.randrange(10**6)}():\n    return 'edited'\n")
        elif action == "delete":
            path.unlink()
        else:
            new = path.with_name(f"added_{rng.randrange(10**6)}.py")
            new.write_text(f"def added_{new.stem}(x):\n    return x * 2\n")
        changes.append(f"{action} {path.name}")
    return changes


def kill_during_update(root: Path, cache: Path, rng: random.Random) -> dict[str, Any]:
    """With the folder indexed and the server watching it, change files and SIGKILL the
    server at a random moment while it re-indexes them."""
    server = RawServer([root], cache_dir=cache)
    server.wait_idle(timeout=120)
    changes = mutate(root, rng, rng.randrange(10, 40))
    delay = rng.uniform(0.05, 0.8)
    time.sleep(delay)
    server.kill()
    return {"phase": "update", "changes": len(changes), "delay": round(delay, 2),
            "rows_in_flight": rows_in_flight(cache)}


def rows_in_flight(cache: Path) -> int:
    """Snapshot rows left 'pending' by a kill: writes it interrupted between their two phases."""
    import sqlite3

    states = list((cache / "workspaces").glob("*/state.db"))
    if not states:
        return 0
    try:
        with sqlite3.connect(states[0], timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files WHERE state='pending'").fetchone()[0]
    except sqlite3.Error:
        return -1


def restart_and_check(root: Path, cache: Path) -> None:
    """Restart, let it finish, stop it; the index must equal a fresh index of the files."""
    with RawServer([root], cache_dir=cache) as server:
        folder = server.wait_idle(timeout=180)[0]
        assert folder["state"] == "idle" and folder["pendingChunks"] == 0, folder
        assert server.search("handler request field", mode="keyword")["results"]
    assert_verified(cache, root)


def run_kills(base: Path, kills_initial: int, kills_update: int, seed: int, files: int = 160) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    log = []
    for i in range(kills_initial):
        root, cache = base / f"initial{i}", base / f"initial{i}-cache"
        make_workspace(root, files, seed=seed + i)
        log.append(kill_during_initial_index(root, cache, rng))
        restart_and_check(root, cache)
    root, cache = base / "updates", base / "updates-cache"
    make_workspace(root, files, seed=seed)
    for _ in range(kills_update):
        log.append(kill_during_update(root, cache, rng))
        restart_and_check(root, cache)
    return log


def test_server_killed_during_indexing_and_updates_recovers_exactly(tmp_path: Path) -> None:
    log = run_kills(tmp_path, kills_initial=2, kills_update=1, seed=int(os.environ.get("CC_KILL_SEED", "8")))
    assert len(log) == 3


# -- store faults ----------------------------------------------------------------------------


DAMAGES = ["delete_store", "garble_store", "garble_state", "delete_dir"]


def test_damaged_or_deleted_index_is_rebuilt_with_a_message(tmp_path: Path, cache: Path) -> None:
    """One folder per kind of damage, all opened by one server."""
    roots = {}
    for damage in DAMAGES:
        root = roots[damage] = tmp_path / damage
        shutil.copytree(FIXTURE, root)
        index = open_index(root)
        assert sync_workspace(index).error is None
        close_index(index)
        (root / "web" / "cart.js").unlink()  # a file deleted meanwhile must not linger as an orphan
        index_dir = index_dir_for(root.resolve())
        if damage == "delete_store":
            shutil.rmtree(index_dir / "milvus.db")
        elif damage == "garble_store":
            for path in (index_dir / "milvus.db").rglob("*"):
                if path.is_file() and path.name != "LOCK":
                    path.write_bytes(os.urandom(64))
        elif damage == "garble_state":
            for path in index_dir.glob("state.db*"):
                path.write_bytes(os.urandom(4096))
        else:
            shutil.rmtree(index_dir)
    with RawServer(list(roots.values()), cache_dir=cache) as server:
        folders = {uri_path(f["uri"]): f for f in server.wait_idle()}
        told = server.messages() + server.messages("window/logMessage")
        for damage, root in roots.items():
            folder = folders[str(root)]
            assert folder["state"] == "idle" and "lastError" not in folder, folder
            assert folder["indexedFiles"] == 6 and folder["chunks"] > 0
            hits = server.search("fetch with retry", workspaceFolder=root.as_uri())["results"]
            assert hits and hits[0]["uri"].startswith(root.as_uri() + "/")
            if damage != "delete_dir":  # a missing directory is a first run, not damage
                assert any(str(index_dir_for(root.resolve())) in m and ("rebuilt" in m or "indexed again" in m)
                           for m in told), (damage, told)
        assert any(m.startswith("Code Context:") and "rebuilt" in m for m in server.messages()), "no showMessage"
        # Deleted while the server has it open (a cleared cache): the next sync rebuilds it.
        root = roots["delete_dir"]
        shutil.rmtree(index_dir_for(root.resolve()))
        edited = root / "src" / "http_client.py"
        edited.write_text(edited.read_text() + "\n\ndef written_after_cache_cleared():\n    return 1\n")
        assert server.request("codeContext/reindex", {"workspaceFolder": root.as_uri()})["started"]
        folder = {uri_path(f["uri"]): f for f in server.wait_idle()}[str(root)]
        assert folder["state"] == "idle" and "lastError" not in folder and folder["indexedFiles"] == 6, folder
        hits = server.search("written_after_cache_cleared", mode="keyword", workspaceFolder=root.as_uri())
        assert hits["results"][0]["uri"] == edited.as_uri()
        assert any("deleted while in use" in m for m in server.messages()), server.messages()
    for root in roots.values():
        assert verified(root, cache).files == 6


def test_remote_store_down_at_start_and_mid_run_loses_no_edits(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    cache = tmp_path / "cache"
    milvus = MilvusServer(tmp_path / "milvus")
    options = {**HASH, "store": {"uri": milvus.uri}}
    with RawServer([root], cache_dir=cache, init_options=options) as server:
        # Down at start: a clear error naming the store; the search fails with it, the server stays up.
        folder = wait_for(lambda: (f := server.status()[0])["state"] == "error" and f, what="error state")
        assert milvus.uri in folder["lastError"]
        assert server.call("codeContext/search", {"query": "retry"}).get("error", {}).get("message")
        milvus.start()
        assert server.request("codeContext/reindex", {})["started"]
        folder = server.wait_idle()[0]
        assert folder["state"] == "idle" and folder["chunks"] > 0, folder
        # Down mid-run: edits, a new file and a deletion while it is gone.
        milvus.stop()
        http = root / "src" / "http_client.py"
        http.write_text(http.read_text() + "\n\ndef reconcile_ledger_while_down(ledger):\n    return sum(ledger)\n")
        (root / "src" / "added_while_down.py").write_text("def added_while_store_down():\n    return 1\n")
        (root / "web" / "cart.js").unlink()
        for path in (http, root / "src" / "added_while_down.py", root / "web" / "cart.js"):
            server.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": path.as_uri(), "type": 2}]})
        answer = wait_for(lambda: (a := server.call("codeContext/search", {"query": "ledger"})).get("error") and a,
                          what="search error while the store is down")
        assert milvus.uri in answer["error"]["message"]
        assert server.alive()
        milvus.start()
        # Back: status clears once the client has reconnected (pymilvus retries the channel),
        # and the next sync (the user's reindex, or any later one) catches every edit up.
        wait_for(lambda: "lastError" not in server.status()[0], what="store reachable again")
        assert server.request("codeContext/reindex", {})["started"]
        folder = server.wait_idle()[0]
        assert folder["state"] == "idle" and "lastError" not in folder, (folder.get("lastError"), server.log_text()[-3000:])
        assert server.search("reconcile_ledger_while_down", mode="keyword")["results"][0]["uri"] == http.as_uri()
        assert server.search("added_while_store_down", mode="keyword")["results"]
        assert not any(r["uri"].endswith("cart.js") for r in server.search("cart", limit=20)["results"])
    assert_verified(cache, root, "--store-uri", milvus.uri)
    milvus.stop()


# -- provider faults -------------------------------------------------------------------------


def fake_openai_on(port: int, dimension: int = 32) -> FakeOpenAIServer:
    """The fake OpenAI server on a chosen port, so it can come back where it was."""
    import threading
    from http.server import ThreadingHTTPServer

    server = FakeOpenAIServer(dimension=dimension)
    server._httpd.server_close()
    server._httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(server))
    server._httpd.daemon_threads = True
    server._thread = threading.Thread(target=server._httpd.serve_forever, args=(0.05,), daemon=True)
    return server.start()


def test_embedding_provider_down_for_the_whole_run_then_back(tmp_path: Path) -> None:
    """The OpenAI-compatible endpoint refuses connections for a whole sync, then answers 503
    to everything for another, then comes back: nothing is lost and the index converges."""
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    cache = tmp_path / "cache"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    options = {"embedding": {"provider": "openai", "baseUrl": base_url, "model": "fake", "dimensions": 32,
                             "maxRetries": 1, "timeout": 5}}
    fake = None
    try:
        with RawServer([root], cache_dir=cache, init_options=options) as server:
            for outage in ("refused", "503"):
                if outage == "503":
                    fake = fake_openai_on(port)
                    fake.fail_next("503", times=10**6)
                    assert server.request("codeContext/reindex", {})["started"]
                folder = server.wait_idle()[0]
                # Nothing embedded, nothing lost: every chunk is in, pending, and keyword search finds it.
                assert folder["state"] == "error", (outage, folder)
                assert folder["chunks"] > 0 and folder["pendingChunks"] == folder["chunks"], (outage, folder)
                assert f"127.0.0.1:{port}" in folder["lastError"]
                assert server.search("fetch_with_retry", mode="keyword")["results"]
            assert fake is not None and len(fake.requests) > 0
            fake.reset()  # back
            assert server.request("codeContext/reindex", {})["started"]
            folder = server.wait_idle()[0]
            assert folder["state"] == "idle" and folder["pendingChunks"] == 0 and "lastError" not in folder, folder
            assert server.search("fetch with retry", mode="semantic")["results"]
            assert all(r.fault is None for r in fake.requests)
        verified(root, cache, embedding={"provider": "openai", "baseUrl": base_url, "model": "fake", "dimensions": 32})
    finally:
        if fake is not None:
            fake.close()
