"""A store's URI: a Milvus Lite directory on this machine or a server; how to show it without
credentials; and, for a local one, which process holds it."""

from __future__ import annotations

import os


def is_local(uri: str) -> bool:
    """A Milvus Lite store (a directory on this machine) rather than a server's URI."""
    return "://" not in uri


def lock_holder(uri: str) -> str | None:
    """When another process holds a Milvus Lite store's lock: " (pid N)" or ""; else None.

    Milvus Lite takes an exclusive flock on <store>/LOCK and keeps it for the life of the
    process that opened the store. A store this process serves is never reported."""
    if not is_local(uri):
        return None
    path = os.path.abspath(uri)
    try:
        import fcntl

        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # Windows, or a Milvus Lite without the lock
        return None
    if path in getattr(server_manager_instance, "_servers", {}):
        return None
    lock = os.path.join(path, "LOCK")
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _flock_pid(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _flock_pid(fd: int) -> str:
    """The pid holding an flock on fd's file, from /proc/locks (Linux), as " (pid N)"."""
    try:
        st = os.fstat(fd)
        wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5] == wanted and parts[4] != str(os.getpid()):
                    return f" (pid {parts[4]})"
    except OSError:
        pass
    return ""


def display_uri(uri: str) -> str:
    """A URI safe to show: no credentials."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri


def release_local(path: str) -> None:
    """Stop this process's Milvus Lite server of a store, if any, releasing its lock and files."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(path)
