"""A follower's link to the folder's owner: the FolderHost calls, answered over its socket.

Light on purpose: a CLI that forwards a search imports this, the protocol and the query
types, never torch, sentence-transformers or pymilvus. Answers are turned back into the
engine's types, re-rooted at this process's spelling of the folder.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from . import protocol
from .jsonrpc import Connection
from .query import Query, Result

# A request the owner has not answered in this long is given up (a full verify may take minutes).
REQUEST_TIMEOUT = 600.0


class Remote:
    """The owner's answers, as if the folder were open here."""

    def __init__(self, sock: socket.socket, root: Path, face: str, identity: protocol.Identity,
                 on_lost: Callable[[Remote], None] | None = None) -> None:
        self.root = root
        self.conn = Connection(sock, on_lost=lambda _c: on_lost(self) if on_lost else None, name="cc-follower")
        answer = protocol.structure(
            self.conn.request(protocol.ATTACH, protocol.unstructure(protocol.AttachParams(os.getpid(), face, identity)),
                              timeout=30),
            protocol.AttachResponse)
        self.owner_pid = answer.process_id
        self.owner_face = answer.face
        self.owner_identity = answer.identity
        self.owner_root = Path(answer.root)

    def _call(self, method: str, params: Any) -> Any:
        return self.conn.request(method, params, timeout=REQUEST_TIMEOUT)

    def _rel(self, uri: str) -> str:
        path = Path(unquote(urlparse(uri).path))
        try:
            return path.relative_to(self.owner_root).as_posix()
        except ValueError:
            return path.as_posix()

    def search(self, q: Query) -> tuple[list[Result], bool]:
        params = protocol.SearchParams(q.text, q.limit, None, list(q.include), list(q.exclude), list(q.languages),
                                       q.mode)
        answer = protocol.structure(self._call(protocol.SEARCH, protocol.unstructure(params)),
                                    protocol.SearchResponse)
        return [self._result(r) for r in answer.results], answer.partial

    def similar(self, rel: str, start_line: int, end_line: int, limit: int) -> tuple[list[Result], bool]:
        """Lines are 1-based inclusive here, as in Result."""
        rng = protocol.Range(protocol.Position(start_line - 1, 0), protocol.Position(end_line, 0))
        params = protocol.SimilarParams((self.owner_root / rel).as_uri(), rng, limit)
        answer = protocol.structure(self._call(protocol.SIMILAR, protocol.unstructure(params)),
                                    protocol.SearchResponse)
        return [self._result(r) for r in answer.results], answer.partial

    def _result(self, r: protocol.SearchResult) -> Result:
        return Result(self.root, self._rel(r.uri), r.range.start.line + 1, r.range.end.line, r.score, r.language,
                      r.content, r.symbol, r.kind)

    def symbols(self, text: str) -> list[tuple[str, Any, float]]:
        """workspace/symbol answers as (path, Symbol, score); the owner ranked them, so the
        score only keeps that order when folders are merged."""
        from .symbols import Symbol

        found = self._call("workspace/symbol", {"query": text}) or []
        out = []
        for i, item in enumerate(found):
            loc = item["location"]
            rng = _range(loc["range"])
            out.append((self._rel(loc["uri"]), Symbol(item["name"], int(item["kind"]), item.get("containerName"),
                                                      rng, rng), 1.0 - i / max(len(found), 1)))
        return out

    def outline(self, rel: str) -> list[Any]:
        from .symbols import Symbol

        nodes = self._call("textDocument/documentSymbol", {"textDocument": {"uri": (self.owner_root / rel).as_uri()}})
        flat: list[Symbol] = []

        def walk(items: list[dict[str, Any]]) -> None:
            for node in items or []:
                flat.append(Symbol(node["name"], int(node["kind"]), None, _range(node["range"]),
                                   _range(node["selectionRange"])))
                walk(node.get("children") or [])
        walk(nodes or [])
        return flat

    def status(self) -> protocol.FolderStatus:
        answer = protocol.structure(self._call(protocol.STATUS, {}), protocol.StatusResponse)
        return answer.folders[0]

    def reindex(self, force: bool = False) -> bool:
        answer = self._call(protocol.REINDEX, protocol.unstructure(protocol.ReindexParams(None, force)))
        return bool(protocol.structure(answer, protocol.ReindexResponse).started)

    def clear(self) -> None:
        self._call(protocol.CLEAR_INDEX, {})

    def verify(self) -> protocol.VerifyResponse:
        return protocol.structure(self._call(protocol.VERIFY, {}), protocol.VerifyResponse)

    def changed(self, rel_paths: list[str]) -> None:
        self.conn.notify(protocol.DID_CHANGE_FILES, {"paths": rel_paths})

    def close(self) -> None:
        self.conn.close()


def _range(r: dict[str, Any]) -> tuple[int, int, int, int]:
    return (r["start"]["line"], r["start"]["character"], r["end"]["line"], r["end"]["character"])
