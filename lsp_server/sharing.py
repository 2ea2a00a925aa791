"""Who owns a folder's index: one process at a time, the others forward to it.

Milvus Lite lets one process open a store, and one writer of state.db is simpler than
many, so every face (language server, CLI, MCP server) first tries to *claim* the folder:
an exclusive ``flock`` on ``owner.lock`` in the folder's index directory. The kernel drops
the lock when its holder exits or is killed, so a crashed owner never leaves a stale claim
behind (a pid file alone would). The claimant serves the folder on ``owner.sock`` beside
it; everyone else connects there and forwards.

Unlike gopls' ``-remote=auto``, which starts a separate daemon, the owner here is simply
the first process that needed the folder; when it exits, a follower claims the folder and
opens the index itself. Unix sockets only, never TCP: the directory is 0700, the socket
0600, and the owner also checks each peer's uid (SO_PEERCRED).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from . import protocol
from .locations import private_dir
from .settings import DEFAULT_LOCAL_MODEL, Settings

LOCK_NAME = "owner.lock"
SOCKET_NAME = "owner.sock"
# sockaddr_un holds 108 bytes; longer paths are reached through /proc/self/fd (Linux).
_MAX_SOCKET_PATH = 100


class Claim:
    """The held lock that makes this process the folder's owner; released on close or exit."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def claim(index_dir: Path) -> Claim | None:
    """Take the folder if nobody holds it; None when another live process does."""
    private_dir(index_dir)
    path = index_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return Claim(fd, path)


def owner_pid(index_dir: Path) -> int | None:
    """The pid of the process holding the folder, or None when nobody does."""
    path = index_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: read who holds it
            data = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(data) if data.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """A socket address for path that fits sockaddr_un, however deep the cache directory is."""
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def listen(index_dir: Path) -> socket.socket:
    """Bind the owner's socket (a stale one from a killed owner is replaced: we hold the claim)."""
    path = index_dir / SOCKET_NAME
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # created 0600, never briefly open to others
    try:
        with _address(path) as address:
            sock.bind(address)
    finally:
        os.umask(old_mask)
    os.chmod(path, 0o600)
    sock.listen(16)
    return sock


def connect(index_dir: Path, timeout: float = 2.0) -> socket.socket | None:
    """A connection to the folder's owner, or None when no owner listens."""
    path = index_dir / SOCKET_NAME
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _address(path) as address:
            sock.connect(address)
    except OSError:
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED), None where unsupported."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def claim_or_connect(index_dir: Path, timeout: float = 10.0) -> Claim | socket.socket:
    """Become the owner, or connect to the one there is. Between an owner's claim and its
    first listen (or a killed owner's socket file and its successor's) both can fail
    for a moment, so both are tried until one holds."""
    deadline = time.monotonic() + timeout
    while True:
        sock = connect(index_dir)
        if sock is not None:
            return sock
        held = claim(index_dir)
        if held is not None:
            return held
        if time.monotonic() > deadline:
            pid = owner_pid(index_dir)
            raise TimeoutError(f"the folder is held by process {pid}, which does not answer on "
                               f"{index_dir / SOCKET_NAME}")
        time.sleep(0.05)


def identity_of(settings: Settings) -> protocol.Identity:
    """What makes two processes' indexes the same one (see protocol.Identity)."""
    emb = settings.embedding
    model = emb.model or (DEFAULT_LOCAL_MODEL if emb.provider == "local" else "")
    return protocol.Identity(emb.provider, model, emb.dimensions, emb.base_url if emb.provider == "openai" else None,
                             settings.store.uri, settings.index.redact_secrets)


def describe_difference(mine: protocol.Identity, theirs: protocol.Identity) -> str | None:
    """One line naming how two identities differ, or None when they match."""
    if mine == theirs:
        return None
    names = {"provider": "embedding provider", "model": "embedding model", "dimensions": "dimensions",
             "base_url": "embedding endpoint", "store_uri": "store", "redact_secrets": "secret redaction"}

    def shown(value: object) -> str:
        return ("on" if value else "off") if isinstance(value, bool) else str(value or "default")

    parts = [f"{names[f.name]} {shown(getattr(theirs, f.name))} (here: {shown(getattr(mine, f.name))})"
             for f in attrs.fields(protocol.Identity) if getattr(mine, f.name) != getattr(theirs, f.name)]
    return "; ".join(parts)
