"""A folder as one process sees it: owned here, or followed through its owner's socket.

Every face opens a folder through ``SharedFolder``. It claims the folder (sharing.claim)
and serves it, or attaches to the owner. When the owner goes away, every follower runs the
election again: one becomes the owner and opens the index, the rest attach to it, and a
request caught in between waits for that and is sent again. Nothing is lost on the way: the
index on disk is the SIGKILL-safe one every sync leaves behind, and the new owner's first
sync catches up with whatever changed meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import protocol, sharing
from .errors import FolderUnavailable, InvalidInput
from .jsonrpc import ConnectionLost, RemoteError
from .locations import index_dir_for
from .query import Query, Result
from .settings import Settings

if TYPE_CHECKING:
    from .host import FolderHost
    from .owner import OwnerServer
    from .remote import Remote

log = logging.getLogger(__name__)

# A request waits this long for a folder that is opening or changing owner.
HANDOVER_SECONDS = 10.0

T = TypeVar("T")


class SharedFolder:
    """Owner or follower of one folder, re-elected when the owner goes away.

    ``on_owned(host)`` runs (on a worker thread) each time this process becomes the owner,
    for the face to start the first sync its own way; ``on_change()`` whenever the role
    changes.
    """

    def __init__(self, root: Path, settings: Settings, face: str, *, watch: bool = False, warm: bool = True,
                 on_owned: Callable[[FolderHost], None] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.root = root.resolve()
        self.settings = settings
        self.face = face
        self.watch = watch
        self.warm = warm
        self.index_dir = index_dir_for(self.root)
        self.identity = sharing.identity_of(settings)
        self.on_owned = on_owned
        self.on_change = on_change
        self.host: FolderHost | None = None
        self.server: OwnerServer | None = None
        self.remote: Remote | None = None
        self.error: str | None = None
        self._claim: sharing.Claim | None = None
        self._settled = threading.Event()  # a role is taken (or failed): requests may go ahead
        self._closing = False
        self._lock = threading.Lock()

    def start(self, timeout: float = HANDOVER_SECONDS) -> None:
        """Blocking: become the owner or a follower. Call on a worker thread."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                got = sharing.claim_or_connect(self.index_dir, max(deadline - time.monotonic(), 0.5))
                if isinstance(got, sharing.Claim):
                    self._own(got)
                    break
                try:
                    self._follow(got)
                    break
                except ConnectionLost:  # the owner went away while we attached: elect again
                    if time.monotonic() > deadline:
                        raise
        except Exception as exc:
            self.error = str(exc)
            log.info("cannot open the index of %s: %s", self.root, exc)  # the face tells the user
        finally:
            self._settled.set()
            if self.on_change is not None:
                self.on_change()

    def _own(self, held: sharing.Claim) -> None:
        from .host import FolderHost
        from .owner import OwnerServer

        self._claim = held
        self.server = OwnerServer(self.index_dir, self.root, self.face, self.identity)
        try:
            host = FolderHost.open(self.root, self.settings, watch=self.watch, warm=self.warm)
        except Exception:
            # Let go: a process whose settings work (another editor, the CLI) may own it instead.
            self._let_go()
            raise
        self.server.set_host(host)
        self.host, self.error = host, None
        if self._closing:
            return
        log.info("%s: this process (%s) owns the index", self.root, self.face)
        if self.on_owned is not None:
            self.on_owned(host)
        else:
            host.start_sync()

    def _follow(self, sock: Any) -> None:
        from .remote import Remote

        remote = Remote(sock, self.root, self.face, self.identity, on_lost=self._lost)
        difference = sharing.describe_difference(self.identity, remote.owner_identity)
        if difference:
            remote.close()
            raise FolderUnavailable(
                f"{self.root} is indexed by process {remote.owner_pid} ({remote.owner_face}) with other settings: "
                f"{difference}. Close it or use the same settings; this process will not answer from another "
                "model's index")
        self.remote, self.error = remote, None
        log.info("%s: following the index owned by process %d (%s)", self.root, remote.owner_pid, remote.owner_face)

    def _lost(self, remote: Remote) -> None:
        """The owner went away: elect again, on a thread of our own (this is the reader's)."""
        with self._lock:
            if self.remote is not remote or self._closing:
                return
            self.remote = None
            self._settled.clear()
        log.info("%s: the owner (process %d) went away; taking over or following its successor",
                 self.root, remote.owner_pid)
        threading.Thread(target=self.start, name="cc-handover", daemon=True).start()

    # -- requests, whichever side answers

    def _call(self, local: Callable[[FolderHost], T], forwarded: Callable[[Remote], T]) -> T:
        """Run a request here or at the owner; caught by a hand-over, it waits for the next
        owner (bounded) and is sent once more."""
        for attempt in (1, 2):
            if not self._settled.wait(HANDOVER_SECONDS):
                raise FolderUnavailable(f"{self.root}: the index is still opening")
            host, remote = self.host, self.remote
            if host is not None:
                return local(host)
            if remote is not None:
                try:
                    return forwarded(remote)
                except ConnectionLost:
                    if attempt == 2:
                        raise FolderUnavailable(f"{self.root}: the index's owner went away") from None
                    self._wait_for_successor(remote)
                    continue
                except RemoteError as exc:
                    if exc.code == -32602:
                        raise InvalidInput(*_split_field(str(exc))) from None
                    raise FolderUnavailable(str(exc)) from None
            raise FolderUnavailable(self.error or f"{self.root}: the index is not open")
        raise AssertionError("unreachable")

    def _wait_for_successor(self, gone: Remote) -> None:
        deadline = time.monotonic() + HANDOVER_SECONDS
        while self.remote is gone and time.monotonic() < deadline:  # until _lost has run
            time.sleep(0.02)
        self._settled.wait(max(0.0, deadline - time.monotonic()))

    def search(self, q: Query, patient: bool = False) -> tuple[list[Result], bool]:
        """``patient``: here, wait for the model rather than answer with words alone (an owner
        elsewhere has its model loaded, or decides for itself)."""
        return self._call(lambda h: h.search(q, patient), lambda r: r.search(q))

    def similar(self, rel: str, lines: list[str], start_line: int, end_line: int,
                limit: int) -> tuple[list[Result], bool]:
        """Lines are 1-based and inclusive. The owner reads the file itself: a follower's
        unsaved edits are not seen there."""
        return self._call(lambda h: (h.similar(rel, lines, start_line, end_line, limit), h.syncing),
                          lambda r: r.similar(rel, start_line, end_line, limit))

    def symbols(self, text: str) -> list[tuple[str, Any, float]]:
        return self._call(lambda h: h.symbols(text), lambda r: r.symbols(text))

    def outline(self, rel: str) -> list[Any]:
        return self._call(lambda h: h.outline(rel), lambda r: r.outline(rel))

    def status(self) -> protocol.FolderStatus:
        """This folder's status; the owner's pid and followers included."""
        from_owner = self._call(lambda h: None, lambda r: r.status())
        if from_owner is not None:
            return from_owner
        from . import wire

        assert self.host is not None and self.server is not None
        return wire.folder_status(self.root.as_uri(), self.host.status(), self.server.owner_info())

    def reindex(self, force: bool = False) -> bool:
        return self._call(lambda h: h.start_sync(force) is not None, lambda r: r.reindex(force))

    def clear(self) -> None:
        self._call(lambda h: h.clear(), lambda r: r.clear())

    def changed(self, rel_paths: list[str], delay: float) -> None:
        """File events: applied here, or sent to the owner (never waits for a hand-over)."""
        host, remote = self.host, self.remote
        if host is not None:
            host.changed(rel_paths, delay)
        elif remote is not None:
            try:
                remote.changed(rel_paths)
            except ConnectionLost:
                pass  # the next owner's first sync reads every changed file

    def close(self) -> None:
        """Blocking: let go of the folder; a follower takes it over."""
        self._closing = True
        with self._lock:
            remote, self.remote = self.remote, None
        if remote is not None:
            remote.close()
        if self.server is not None:  # no request reaches the index while it closes
            self.server.close()
            self.server = None
        if self.host is not None:
            self.host.close()
        self._let_go()  # only now may another process open the store

    def _let_go(self) -> None:
        """Stop serving the folder and drop the claim; followers elect the next owner."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._claim is not None:
            (self.index_dir / sharing.SOCKET_NAME).unlink(missing_ok=True)
            self._claim.release()
            self._claim = None


def _split_field(message: str) -> tuple[str, str]:
    field, _, rest = message.partition(": ")
    return (field, rest) if rest else ("params", message)
