"""Engine values as protocol values: the one place that knows both.

The language server, the owner's socket and the MCP server answer from the same engine
types (``Result``, ``Symbol``, the status dict); this module turns them into the JSON
shapes of docs/protocol.md and LSP's own types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types as lsp
from lsprotocol.converters import get_converter

from . import protocol
from .query import Result
from .symbols import MAX_OUTLINE_DEPTH, Symbol

UriOf = Callable[[str], str]  # a folder-relative path -> the URI a client knows it by

_lsp_converter = get_converter()


def search_result(uri_of: UriOf, r: Result) -> protocol.SearchResult:
    # Result lines are 1-based inclusive; an LSP range is 0-based, end exclusive.
    rng = protocol.Range(protocol.Position(r.start_line - 1, 0), protocol.Position(r.end_line, 0))
    return protocol.SearchResult(uri_of(r.path), rng, r.score, r.language, r.content, r.symbol, r.kind)


def search_response(hits: list[tuple[UriOf, Result]], partial: bool) -> Any:
    return protocol.unstructure(protocol.SearchResponse([search_result(u, r) for u, r in hits], partial))


def folder_status(uri: str, info: dict[str, Any], owner: protocol.OwnerInfo | None = None) -> protocol.FolderStatus:
    """A FolderStatus from WorkspaceIndex.status()."""
    emb = info["embedding"]
    return protocol.FolderStatus(
        uri, info["state"], info["files"], info["indexedFiles"], info["chunks"], info["pendingChunks"],
        protocol.EmbeddingInfo(str(emb["provider"]), str(emb["model"]), int(emb.get("dimension") or 0),
                               str(emb["baseUrl"]) if emb.get("baseUrl") else None),
        protocol.StoreInfo(info["store"]["uri"]), info.get("lastError"), owner)


def _range(r: tuple[int, int, int, int]) -> lsp.Range:
    return lsp.Range(lsp.Position(r[0], r[1]), lsp.Position(r[2], r[3]))


def _kind(kind: int) -> lsp.SymbolKind:
    try:
        return lsp.SymbolKind(kind)
    except ValueError:
        return lsp.SymbolKind.Variable


def workspace_symbol(uri_of: UriOf, path: str, sym: Symbol) -> lsp.WorkspaceSymbol:
    location = lsp.Location(uri_of(path), _range(sym.range))
    return lsp.WorkspaceSymbol(name=sym.name, kind=_kind(sym.kind), location=location, container_name=sym.container)


def document_symbols(symbols: list[Symbol]) -> list[lsp.DocumentSymbol]:
    """The outline for textDocument/documentSymbol: children by range containment."""
    roots: list[lsp.DocumentSymbol] = []
    stack: list[tuple[Symbol, lsp.DocumentSymbol]] = []
    for sym in sorted(symbols, key=lambda s: (s.range[:2], (-s.range[2], -s.range[3]))):
        while stack and not _contains(stack[-1][0].range, sym.range):
            stack.pop()
        node = lsp.DocumentSymbol(name=sym.name, kind=_kind(sym.kind), range=_range(sym.range),
                                  selection_range=_range(sym.selection_range))
        if not stack:
            roots.append(node)
        else:
            parent = stack[-1][1]
            if parent.children is None:
                parent.children = []
            parent.children.append(node)
        if len(stack) < MAX_OUTLINE_DEPTH - 1:
            stack.append((sym, node))
    return roots


def _contains(outer: tuple[int, ...], inner: tuple[int, ...]) -> bool:
    return outer != inner and outer[:2] <= inner[:2] and inner[2:] <= outer[2:]


def lsp_json(value: Any) -> Any:
    """An LSP value (or a list of them) as JSON, for the owner's socket."""
    return _lsp_converter.unstructure(value)
