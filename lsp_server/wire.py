"""Engine values as protocol values: the one place that knows both.

The language server and the owner's socket answer from the same engine types (``Result``,
``Symbol``, the status dict); this module turns them into the JSON shapes of
docs/protocol.md and of LSP's WorkspaceSymbol and DocumentSymbol, without the protocol
library, so the socket's answers and the editor's are built by the same lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import protocol
from .kinds import SymbolKind
from .query import Result

if TYPE_CHECKING:
    from .index import IndexStatus
from .symbols import MAX_OUTLINE_DEPTH, Symbol

UriOf = Callable[[str], str]  # a folder-relative path -> the URI a client knows it by


def search_result(uri_of: UriOf, r: Result) -> protocol.SearchResult:
    # Result lines are 1-based inclusive; an LSP range is 0-based, end exclusive.
    rng = protocol.Range(protocol.Position(r.start_line - 1, 0), protocol.Position(r.end_line, 0))
    return protocol.SearchResult(uri_of(r.path), rng, r.score, r.language, r.content, r.symbol, r.kind)


def search_response(hits: list[tuple[UriOf, Result]], partial: bool) -> Any:
    return protocol.unstructure(protocol.SearchResponse([search_result(u, r) for u, r in hits], partial))


def folder_status(uri: str, s: IndexStatus, owner: protocol.OwnerInfo | None = None) -> protocol.FolderStatus:
    emb = s.embedding
    return protocol.FolderStatus(
        uri, s.state, s.files, s.indexed_files, s.chunks, s.pending_chunks, s.redactions, s.redacted_files,
        protocol.EmbeddingInfo(emb.provider, emb.model, emb.dimension or 0, emb.base_url),
        protocol.StoreInfo(s.store_uri), s.last_error, owner)


def _range(r: tuple[int, int, int, int]) -> dict[str, Any]:
    return {"start": {"line": r[0], "character": r[1]}, "end": {"line": r[2], "character": r[3]}}


def _kind(kind: int) -> int:
    return kind if 1 <= kind <= max(SymbolKind) else int(SymbolKind.Variable)


def workspace_symbol(uri_of: UriOf, path: str, sym: Symbol) -> dict[str, Any]:
    """An LSP WorkspaceSymbol, as JSON. The location is the name, as pyright and jedi give it:
    a jump lands on the name, not on a decorator, annotation or attribute above it
    (documentSymbol keeps the full range)."""
    out: dict[str, Any] = {"name": sym.name, "kind": _kind(sym.kind),
                           "location": {"uri": uri_of(path), "range": _range(sym.selection_range)}}
    if sym.container:
        out["containerName"] = sym.container
    return out


def document_symbols(symbols: list[Symbol]) -> list[dict[str, Any]]:
    """The outline for textDocument/documentSymbol (LSP DocumentSymbol JSON): children by
    range containment."""
    roots: list[dict[str, Any]] = []
    stack: list[tuple[Symbol, dict[str, Any]]] = []
    for sym in sorted(symbols, key=lambda s: (s.range[:2], (-s.range[2], -s.range[3]))):
        while stack and not _contains(stack[-1][0].range, sym.range):
            stack.pop()
        node = {"name": sym.name, "kind": _kind(sym.kind), "range": _range(sym.range),
                "selectionRange": _range(sym.selection_range)}
        if not stack:
            roots.append(node)
        else:
            stack[-1][1].setdefault("children", []).append(node)
        if len(stack) < MAX_OUTLINE_DEPTH - 1:
            stack.append((sym, node))
    return roots


def _contains(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    return outer != inner and outer[:2] <= inner[:2] and inner[2:] <= outer[2:]
