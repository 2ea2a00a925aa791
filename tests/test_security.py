"""Security properties of GitHub issue 8, checked on real server processes.

- By default nothing leaves the machine: with the local model, the server's every
  connect/sendto/sendmsg/bind (strace) is loopback, and it works in a network namespace
  that has nothing but loopback (unshare -n).
- Secret-bearing files are never indexed: not in the store, not in the cache, not in results.
- Results and codeContext/similar only read files inside the workspace folders.
- API keys and store tokens never appear in logs, errors, status or the index.
- TCP mode binds 127.0.0.1 unless told otherwise, and says so.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer  # noqa: E402
from lsp_raw import HASH, SERVER_CMD, RawServer, frame, wait_for  # noqa: E402
from test_reliability import MilvusServer, free_port  # noqa: E402

pytestmark = pytest.mark.timeout(240)

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"
SECRET_CANARY = "CANARY_SECRET_d41d8cd98f00"
API_KEY = "sk-canary-api-key-5f2b9a7c31e84d06"
STORE_TOKEN = "canary-store-token-8e1c2a6f"
LINES = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}


def all_bytes_under(path: Path) -> bytes:
    out = []
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out.append(p.read_bytes())
    return b"\0".join(out)


# -- nothing leaves the machine ------------------------------------------------------------------

_ADDR = re.compile(r'(connect|sendto|sendmsg|bind)\(.*?sa_family=(AF_INET6?)(.*?)\}')
_IP = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def network_calls(trace: str) -> list[tuple[str, str]]:
    """(syscall, address) of every IPv4/IPv6 connect, sendto, sendmsg and bind in an strace log."""
    calls = []
    for line in trace.splitlines():
        m = _ADDR.search(line)
        if m:
            ip = _IP.search(m.group(3))
            calls.append((m.group(1), (ip.group(1) or ip.group(2)) if ip else "?"))
    return calls


def is_loopback(address: str, syscall: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback  # binding 0.0.0.0 or :: would listen beyond loopback: not allowed either


def test_local_provider_talks_to_nothing_but_loopback(tmp_path: Path) -> None:
    """Index and search with the bundled model while strace records every socket address the
    server (and any child) uses; inside `unshare -n` when possible, so that anything but
    loopback would also fail outright."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    trace = tmp_path / "trace.txt"
    traced = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "signal=none", "-e", "trace=connect,sendto,sendmsg,bind",
              "-o", str(trace), *SERVER_CMD]
    isolated = os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip")
    command = (["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *traced] if isolated else traced)
    env = {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": ""}  # the server must not rely on the caller's
    with RawServer([root], cache_dir=tmp_path / "cache", init_options={}, command=command, env=env) as server:
        folder = server.wait_idle(timeout=180)[0]
        assert folder["state"] == "idle" and folder["embedding"]["provider"] == "local", folder
        assert folder["pendingChunks"] == 0 and folder["chunks"] > 0
        top = server.search("retry failed http requests", mode="semantic")["results"][0]
        assert top["uri"] == (root / "src" / "http_client.py").as_uri()
        assert server.request("codeContext/similar", {"uri": top["uri"], "range": LINES})["results"] is not None
        assert server.request("workspace/symbol", {"query": "fetch_with_retry"})
    calls = network_calls(trace.read_text())
    assert any(c[0] == "connect" for c in calls), "the trace saw no connect at all: is strace tracing?"
    outside = [c for c in calls if not is_loopback(c[1], c[0])]
    assert not outside, f"non-loopback socket use: {outside[:10]}"


# -- secrets and the workspace boundary ------------------------------------------------------------

SECRET_FILES = [".env", ".env.local", "config.env", ".envrc", "id_rsa", "id_ed25519", "server.pem", "private.key",
                "credentials", "credentials.json", "gcp-credentials.json", "service-account-prod.json",
                "secrets.yaml", "app.secret", ".npmrc", ".pypirc", ".netrc", "keystore.jks", ".htpasswd"]


def test_secrets_and_outside_files_are_never_read(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    for name in SECRET_FILES:
        (root / name).write_text(f"def {SECRET_CANARY}_{name.replace('.', '_').replace('-', '_')}():\n"
                                 f"    token = '{SECRET_CANARY}'\n")
    (root / "config").mkdir()
    (root / "config" / ".env.production").write_text(f"API_TOKEN={SECRET_CANARY}\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.py").write_text(f"def {SECRET_CANARY}_outside():\n    return '{SECRET_CANARY}'\n")
    (root / "linked.py").symlink_to(outside / "private.py")
    (root / "linked_dir").symlink_to(outside)
    cache = tmp_path / "cache"
    with RawServer([root], cache_dir=cache) as server:
        folder = server.wait_idle()[0]
        assert folder["indexedFiles"] == 7, folder  # the fixture's files, nothing else
        for mode in ("keyword", "hybrid", "semantic"):
            for r in server.search(f"{SECRET_CANARY} token", mode=mode, limit=50)["results"]:
                assert SECRET_CANARY not in r["content"]
                assert r["uri"].startswith(root.as_uri() + "/") and "linked" not in r["uri"]
        assert server.request("workspace/symbol", {"query": SECRET_CANARY}) == []
        # similar and documentSymbol read nothing outside the folder, however the URI is spelled.
        for target in [(outside / "private.py").as_uri(), root.as_uri() + "/../outside/private.py",
                       root.as_uri() + "/src/../../outside/private.py", (root / "linked.py").as_uri(),
                       (root / "linked_dir" / "private.py").as_uri(), "file:///etc/passwd",
                       root.as_uri() + "/%2e%2e/outside/private.py"]:
            answer = server.call("codeContext/similar", {"uri": target, "range": LINES})
            assert answer.get("error", {}).get("code") == -32602, (target, answer)
            assert "uri" in answer["error"]["message"]
            outline = server.request("textDocument/documentSymbol", {"textDocument": {"uri": target}})
            assert not outline, (target, outline)
        # A saved secret file is not indexed either.
        (root / ".env").write_text(f"NEW_TOKEN={SECRET_CANARY}_saved\n")
        server.notify("textDocument/didSave", {"textDocument": {"uri": (root / ".env").as_uri()}})
        time.sleep(1)
        assert not [r for r in server.search(f"{SECRET_CANARY}_saved", mode="keyword")["results"]
                    if SECRET_CANARY in r["content"]]
    # Nothing of the secrets anywhere in the index directory: store, state, cache.
    assert SECRET_CANARY.encode() not in all_bytes_under(cache)


# -- keys and tokens never leak ----------------------------------------------------------------------


def test_api_key_and_store_token_never_appear_in_output_or_index(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    cache = tmp_path / "cache"
    milvus = MilvusServer(tmp_path / "milvus")  # down at first: store errors carry the URI, never the token
    seen: list[Any] = []
    with FakeOpenAIServer(dimension=32) as fake:
        fake.fail_next("401")  # the fake server echoes the Authorization header back
        options = {"embedding": {"provider": "openai", "baseUrl": fake.base_url, "model": "fake", "dimensions": 32,
                                 "apiKeyEnv": "CC_CANARY_KEY", "maxRetries": 0},
                   "store": {"uri": milvus.uri, "tokenEnv": "CC_CANARY_STORE_TOKEN"}}
        env = {"CC_CANARY_KEY": API_KEY, "CC_CANARY_STORE_TOKEN": STORE_TOKEN}
        with RawServer([root], cache_dir=cache, init_options=options, env=env) as server:
            folder = wait_for(lambda: (f := server.status()[0])["state"] == "error" and f, what="store error")
            seen += [folder, server.call("codeContext/search", {"query": "retry"})]
            milvus.start()
            assert server.request("codeContext/reindex", {})["started"]
            folder = server.wait_idle()[0]
            seen.append(folder)
            assert "401" in folder["lastError"] and "CC_CANARY_KEY" in folder["lastError"], folder
            fake.fail_next("400")  # echoes the key in its error message too
            assert server.request("codeContext/reindex", {})["started"]
            seen.append(server.wait_idle()[0])
            assert server.request("codeContext/reindex", {})["started"]
            folder = server.wait_idle()[0]
            seen.append(folder)
            assert folder["state"] == "idle" and folder["pendingChunks"] == 0, folder
            seen.append(server.search("fetch with retry", mode="semantic"))
            seen += [server.notifications, server.unmatched]
            log = server.log_text()
        # The key was really sent, so its absence below means something.
        assert any(r.authorization == f"Bearer {API_KEY}" for r in fake.requests)
        assert any(r.fault == "401" for r in fake.requests) and any(r.fault == "400" for r in fake.requests)
    milvus.stop()
    everything = repr(seen).encode() + log.encode() + all_bytes_under(cache) + all_bytes_under(tmp_path / "milvus")
    for canary in (API_KEY, STORE_TOKEN):
        assert canary.encode() not in everything, canary
    assert b"authentication failed (401)" in everything  # the errors were there, just without the key


# -- secrets inside ordinary files (issue 17) -------------------------------------------------------------


def test_secrets_inside_files_never_reach_the_provider_the_index_or_the_log(tmp_path: Path) -> None:
    """A real server embedding through a real HTTP provider: every secret kind is replaced before
    the provider, the store or the cache sees it; codeContext/similar on the lines of a key sends
    no key either; the code around each secret is found and status counts the redactions."""
    from secret_fixtures import cases

    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    chosen = cases()
    for case in chosen:
        (root / case.path).parent.mkdir(parents=True, exist_ok=True)
        (root / case.path).write_text(case.text)
    secrets = [s for c in chosen for s in c.secrets]
    cache = tmp_path / "cache"
    with FakeOpenAIServer(dimension=32, semantic=True) as fake:
        options = {"embedding": {"provider": "openai", "baseUrl": fake.base_url, "model": "fake", "dimensions": 32}}
        with RawServer([root], cache_dir=cache, init_options=options) as server:
            folder = server.wait_idle()[0]
            assert folder["state"] == "idle" and folder["pendingChunks"] == 0, folder
            assert folder["redactions"] == sum(len(c.kinds) for c in chosen)
            assert folder["redactedFiles"] == len(chosen)
            answers = []
            for case in chosen:
                hits = server.search(case.function, mode="keyword", limit=3)["results"]
                assert hits and hits[0]["uri"] == (root / case.path).as_uri(), (case.name, hits)
                assert "[REDACTED:" in hits[0]["content"]
                answers.append(hits)
            key = next(c for c in chosen if c.name == "rsa_key")
            sent_before = len(fake.requests)
            answers.append(server.request("codeContext/similar", {
                "uri": (root / key.path).as_uri(),
                "range": {"start": {"line": 2, "character": 0}, "end": {"line": 12, "character": 0}}}))
            assert len(fake.requests) > sent_before  # the selected lines were embedded
            log = server.log_text()
        sent = repr([(r.inputs, r.body) for r in fake.requests])
    assert all(c.function in sent for c in chosen)  # the files were sent, without their secrets
    everything = sent + repr(answers) + log
    leaked = [s for s in secrets if s in everything or s.encode() in all_bytes_under(cache)]
    assert not leaked, f"{len(leaked)} secrets leaked"


# -- TCP binds loopback ---------------------------------------------------------------------------------


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket this process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            if family == socket.AF_INET:
                address = socket.inet_ntop(family, raw[::-1])
            else:
                address = socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.append((address, int(hex_port, 16)))
    return found


def test_tcp_mode_binds_loopback_unless_told_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    env = {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path / "cache")}
    for host, loopback in ((None, True), ("0.0.0.0", False)):
        port = free_port()
        log = tmp_path / f"tcp-{host}.log"
        args = [*SERVER_CMD, "--tcp", "--port", str(port), *(["--host", host] if host else [])]
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(log, "wb"))
        try:
            wait_for(lambda port=port, proc=proc: any(p == port for _, p in listening_addresses(proc.pid)),
                     timeout=60, what="listening socket")
            ours = [a for a, p in listening_addresses(proc.pid) if p == port]
            text = log.read_text()
            if loopback:
                assert ours == ["127.0.0.1"], ours
                assert f"listening on 127.0.0.1:{port}" in text
                # A client on loopback gets a working server.
                with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                    conn.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                        "processId": None, "rootUri": None, "capabilities": {},
                        "workspaceFolders": [{"uri": root.as_uri(), "name": "ws"}],
                        "initializationOptions": HASH}}))
                    conn.settimeout(30)
                    reply = b""
                    while b'"capabilities"' not in reply:
                        chunk = conn.recv(65536)
                        assert chunk, "connection closed before initialize was answered"
                        reply += chunk
            else:
                assert ours == ["0.0.0.0"], ours
                assert f"listening on 0.0.0.0:{port}" in text and "anyone who can reach it" in text
            # Whatever the protocol port, everything else the process listens on is loopback.
            others = [a for a, p in listening_addresses(proc.pid) if p != port]
            assert all(ipaddress.ip_address(a).is_loopback for a in others), others
        finally:
            proc.kill()
            proc.wait(timeout=30)
