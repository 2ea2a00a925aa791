"""One index, many faces: the first process on a folder owns its index, the rest forward to it.

Real processes throughout: language servers over stdio, the CLI as a subprocess, kill -9.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lsp_raw import HASH, RawServer, wait_for
from test_reliability import FIXTURE

from lsp_server.locations import index_dir_for


def cli(cache: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(cache), "CODE_CONTEXT_PROVIDER": "hash", **env}
    return subprocess.run([sys.executable, "-m", "lsp_server.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    return root, tmp_path / "cache"


def owner_of(server: RawServer) -> dict[str, Any]:
    return server.status()[0]["owner"]


def search_rows(answer: dict[str, Any]) -> list[tuple[str, int, int, float]]:
    return [(r["uri"], r["range"]["start"]["line"], r["range"]["end"]["line"], r["score"]) for r in answer["results"]]


# As an editor does: it watches files itself, so a server runs no watchdog of its own and the
# follower's didSave can only reach the owner through the owner's socket.
CLIENT_WATCHES = {"workspace": {"didChangeWatchedFiles": {"dynamicRegistration": True}}}


def test_second_server_follows_then_takes_over_after_kill9(tmp_path: Path) -> None:
    root, cache = workspace(tmp_path)
    first = RawServer([root], cache_dir=cache, capabilities=CLIENT_WATCHES)
    second = None
    try:
        first.wait_idle()
        second = RawServer([root], cache_dir=cache, capabilities=CLIENT_WATCHES)
        # The second attaches to the first and says so in its status.
        owner = wait_for(lambda: second.status()[0].get("owner"), what="owner in status")
        assert owner["processId"] == first.proc.pid and owner["face"] == "lsp"
        assert {"processId": second.proc.pid, "face": "lsp"} in owner_of(first)["clients"]
        # Same answers as the owner's own, for search and symbols.
        for q in ("fetch with retry", "matrix multiply"):
            assert search_rows(second.search(q, limit=5)) == search_rows(first.search(q, limit=5))
        assert second.request("workspace/symbol", {"query": "fetch_with_retry"}) == first.request(
            "workspace/symbol", {"query": "fetch_with_retry"})

        # A function saved in the follower's editor is found from the owner.
        target = root / "src" / "http_client.py"
        target.write_text(target.read_text() + "\n\ndef gargantuan_zeppelin_checksum():\n    return 42\n")
        second.notify("textDocument/didSave", {"textDocument": {"uri": target.as_uri()}})
        hit = wait_for(lambda: [r for r in first.search("gargantuan_zeppelin_checksum", mode="keyword")["results"]
                                if "gargantuan_zeppelin_checksum" in r["content"]], timeout=10, what="saved function")
        assert hit[0]["uri"].endswith("src/http_client.py")

        # kill -9 of the owner: the follower takes the folder over and answers again.
        first.kill()
        answer = wait_for(lambda: second.search("gargantuan zeppelin checksum", mode="keyword")["results"],
                          timeout=20, what="answers after the owner was killed")
        assert any("gargantuan_zeppelin_checksum" in r["content"] for r in answer)
        assert owner_of(second)["processId"] == second.proc.pid
        second.wait_idle()
        second.shutdown()
        second = None
        out = cli(cache, "verify", str(root), "--no-sync")
        assert out.returncode == 0 and "index matches the files" in out.stdout, out.stdout + out.stderr
    finally:
        first.shutdown()
        if second is not None:
            second.shutdown()


def test_cli_forwards_to_the_language_server(tmp_path: Path) -> None:
    root, cache = workspace(tmp_path)
    with RawServer([root], cache_dir=cache) as server:
        server.wait_idle()
        expected = server.search("render a table with borders", limit=5)["results"]
        out = cli(cache, "search", str(root), "render a table with borders", "--json", "--limit", "5")
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""  # quiet: no model loading, no lock error
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert [(r["path"], r["start_line"], r["end_line"], r["score"]) for r in rows] == [
            (Path(e["uri"].removeprefix("file://")).relative_to(root).as_posix(), e["range"]["start"]["line"] + 1,
             e["range"]["end"]["line"], e["score"]) for e in expected]

        status = cli(cache, "status", str(root))
        assert status.returncode == 0, status.stderr
        assert f"process {server.proc.pid} (lsp)" in status.stdout and "7 indexed" in status.stdout

        verify = cli(cache, "verify", str(root))
        assert verify.returncode == 0 and "index matches the files" in verify.stdout, verify.stdout + verify.stderr

        index = cli(cache, "index", str(root))
        assert index.returncode == 0 and f"indexed by process {server.proc.pid}" in index.stdout, index.stdout
        # The server kept the folder throughout and still answers.
        assert server.search("fetch with retry")["results"]
        assert owner_of(server)["processId"] == server.proc.pid


def test_follower_with_other_settings_says_so_in_one_line(tmp_path: Path) -> None:
    root, cache = workspace(tmp_path)
    with RawServer([root], cache_dir=cache, init_options={"embedding": {"provider": "hash", "dimensions": 64}}) as s:
        s.wait_idle()
        out = cli(cache, "search", str(root), "retry")
        assert out.returncode == 1 and out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "other settings" in lines[0] and "dimensions 64" in lines[0], out.stderr
        assert f"process {s.proc.pid}" in lines[0]


def test_nobody_owns_the_folder_the_cli_opens_it_and_lets_go(tmp_path: Path) -> None:
    root, cache = workspace(tmp_path)
    out = cli(cache, "index", str(root))
    assert out.returncode == 0, out.stderr
    status = cli(cache, "status", str(root))
    assert "(this command)" in status.stdout  # nobody else held it: the command itself did
    # Nothing is left holding the folder: a server opens it as its owner.
    with RawServer([root], cache_dir=cache, init_options=HASH) as server:
        assert server.wait_idle()[0]["owner"]["processId"] == server.proc.pid


def test_the_owners_socket_is_private(tmp_path: Path) -> None:
    root, _ = workspace(tmp_path)
    # A cache another user could walk into if the guards failed (pytest's tmp is root-only).
    cache = Path(tempfile.mkdtemp(prefix="cc-share-"))
    os.chmod(cache, 0o755)
    try:
        with RawServer([root], cache_dir=cache) as server:
            server.wait_idle()
            os.environ["CODE_CONTEXT_CACHE_DIR"] = str(cache)
            try:
                folder = index_dir_for(root.resolve())
            finally:
                os.environ.pop("CODE_CONTEXT_CACHE_DIR")
            sock_path = folder / "owner.sock"
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert stat.S_ISSOCK(sock_path.stat().st_mode) and stat.S_IMODE(sock_path.stat().st_mode) == 0o600
            if os.getuid() == 0 and Path("/usr/bin/python3").exists():
                # Another user is stopped by the directory's mode...
                assert probe_as_nobody(sock_path).startswith("PermissionError")
                # ...and, with the modes loosened, by the owner's SO_PEERCRED check.
                for path in (cache, cache / "workspaces", folder):
                    os.chmod(path, 0o755)
                os.chmod(sock_path, 0o777)
                # Closed without an answer (before or after the request was written).
                assert probe_as_nobody(sock_path) in ("b''", "BrokenPipeError", "ConnectionResetError")
            # The owner's own user is answered.
            assert server.search("fetch with retry")["results"]
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def probe_as_nobody(sock_path: Path) -> str:
    """Connect to the socket as user 65534 and send a status request; what came back."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"codeContext/status","params":{}}'
    frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
    probe = ("import socket,sys\n"
             "try:\n"
             "    s=socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
             f"    s.sendall({frame!r})\n"
             "    print(repr(s.recv(100)))\n"
             "except OSError as e:\n"
             "    print(type(e).__name__)\n")
    out = subprocess.run(["/usr/bin/python3", "-c", probe, str(sock_path)], capture_output=True, text=True,
                         timeout=30, user=65534, cwd="/")
    return out.stdout.strip()


def test_forwarded_cli_loads_no_model_and_no_store(tmp_path: Path) -> None:
    root, cache = workspace(tmp_path)
    heavy = ("torch", "sentence_transformers", "pymilvus", "milvus_lite", "transformers")
    probe = ("import sys\nfrom lsp_server import cli\n"
             f"rc = cli.main(['search', {str(root)!r}, 'fetch with retry', '--json'])\n"
             f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})), rc, file=sys.stderr)\n")
    env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(cache), "CODE_CONTEXT_PROVIDER": "hash"}
    with RawServer([root], cache_dir=cache) as server:
        server.wait_idle()
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        assert "LOADED [] 0" in out.stderr, out.stderr
        assert json.loads(out.stdout.splitlines()[0])["path"] == "src/http_client.py"
    # Without an owner the same command loads the engine (the probe can tell the difference).
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert "'pymilvus'" in out.stderr and out.stderr.rstrip().endswith("0"), out.stderr


def test_one_claim_at_a_time_and_the_holder_is_named(tmp_path: Path) -> None:
    from lsp_server import sharing

    folder = tmp_path / "index"
    first = sharing.claim(folder)
    assert first is not None and sharing.owner_pid(folder) == os.getpid()
    assert sharing.claim(folder) is None  # held (a second open file description conflicts, as another process would)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    first.release()
    assert sharing.owner_pid(folder) is None
    again = sharing.claim(folder)
    assert again is not None
    again.release()


def test_different_settings_are_described_in_one_line() -> None:
    from lsp_server import protocol, sharing
    from lsp_server.settings import parse

    mine = sharing.identity_of(parse({"embedding": {"provider": "local"}})[0])
    theirs = sharing.identity_of(parse({"embedding": {"provider": "local", "model": "all-MiniLM-L6-v2"}})[0])
    assert sharing.describe_difference(mine, theirs) is None  # the default model by name is the same model
    other = protocol.Identity("hash", "", 64, None, None, False)
    line = sharing.describe_difference(mine, other)
    assert line is not None and "\n" not in line
    assert "embedding provider hash (here: local)" in line and "secret redaction off (here: on)" in line
