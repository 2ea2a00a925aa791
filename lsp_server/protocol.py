"""The Code Context protocol: the server's custom requests and their JSON shapes.

Params arrive as raw JSON (pygls knows no types for these methods) and are structured
here strictly: cattrs would otherwise turn 5 into "5" and "ab" into ["a", "b"], and a
wrong type must be a -32602 naming the field, not a guess. docs/protocol.md describes
the same messages for client authors.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
from cattrs.errors import ClassValidationError

from .convert import camel, converter, json_type
from .errors import InvalidInput

SEARCH = "codeContext/search"
SIMILAR = "codeContext/similar"
STATUS = "codeContext/status"
REINDEX = "codeContext/reindex"
CLEAR_INDEX = "codeContext/clearIndex"
METHODS = frozenset({SEARCH, SIMILAR, STATUS, REINDEX, CLEAR_INDEX})
# Spoken only on a folder owner's socket (docs/protocol.md, "Sharing one index"): a follower
# introduces itself, forwards its editor's file events, and asks for a verification.
ATTACH = "codeContext/attach"
DID_CHANGE_FILES = "codeContext/didChangeFiles"
VERIFY = "codeContext/verify"

T = TypeVar("T")


@attrs.frozen
class Position:
    line: int
    character: int


@attrs.frozen
class Range:
    """LSP range: 0-based lines, end exclusive."""

    start: Position
    end: Position


# -- params (null is taken as absent for every optional field)


@attrs.frozen
class SearchParams:
    query: str
    limit: int | None = None
    workspace_folder: str | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    languages: list[str] | None = None
    mode: str | None = None


@attrs.frozen
class SimilarParams:
    uri: str
    range: Range
    limit: int | None = None


@attrs.frozen
class StatusParams:
    pass


@attrs.frozen
class ReindexParams:
    workspace_folder: str | None = None
    force: bool | None = None


@attrs.frozen
class ClearIndexParams:
    workspace_folder: str | None = None


# -- results (fields defaulting to None are left out of the JSON when None)


@attrs.frozen
class SearchResult:
    uri: str
    range: Range
    score: float
    language: str
    content: str
    symbol: str | None = None
    kind: int | None = None


@attrs.frozen
class SearchResponse:
    results: list[SearchResult]
    partial: bool


@attrs.frozen
class EmbeddingInfo:
    provider: str
    model: str
    dimension: int
    base_url: str | None = None  # host (and port) of a remote provider: never a path or a key


@attrs.frozen
class StoreInfo:
    uri: str


@attrs.frozen
class Peer:
    """A process on a folder: its owner, or a follower attached to the owner's socket."""

    process_id: int
    face: str  # lsp | cli | mcp


@attrs.frozen
class OwnerInfo:
    process_id: int
    face: str
    clients: list[Peer]


@attrs.frozen
class FolderStatus:
    uri: str
    state: str  # idle | indexing | error
    files: int
    indexed_files: int
    chunks: int
    pending_chunks: int
    redactions: int  # secrets replaced in the indexed files' text before storing or embedding
    redacted_files: int  # files with at least one
    embedding: EmbeddingInfo
    store: StoreInfo
    last_error: str | None = None
    owner: OwnerInfo | None = None


@attrs.frozen
class StatusResponse:
    folders: list[FolderStatus]


@attrs.frozen
class ReindexResponse:
    started: bool


@attrs.frozen
class ClearIndexResponse:
    pass


@attrs.frozen
class Identity:
    """What decides which index a process would read: two that differ must not share one."""

    provider: str
    model: str
    dimensions: int | None = None
    base_url: str | None = None
    store_uri: str | None = None
    redact_secrets: bool = True  # what the stored rows hold: with or without secrets


@attrs.frozen
class AttachParams:
    process_id: int
    face: str
    identity: Identity


@attrs.frozen
class AttachResponse:
    process_id: int
    face: str
    root: str  # the folder's resolved path: result URIs are built on it
    identity: Identity


@attrs.frozen
class DidChangeFilesParams:
    paths: list[str]  # relative to the folder, posix


@attrs.frozen
class VerifyParams:
    sync: bool | None = None


@attrs.frozen
class VerifyResponse:
    files: int
    chunks: int
    missing: list[str]
    extra: list[str]
    duplicates: list[str]
    symbol_orphans: list[str]
    search_index: list[str] = attrs.Factory(list)




def _problems(exc: BaseException, path: str) -> list[str]:
    """`field.sub: what is wrong` for each failure cattrs collected."""
    if isinstance(exc, ClassValidationError):
        with_notes, others = exc.group_exceptions()
        found = [p for sub, note in with_notes for p in _problems(sub, f"{path}{camel(note.name)}.")]
        return found + [p for sub in others for p in _problems(sub, path)]
    field = path.rstrip(".") or "params"
    if isinstance(exc, KeyError):
        return [f"{field}: required"]
    return [f"{field}: {exc}"]


def structure(raw: Any, cls: type[T]) -> T:
    """Params of a request as cls; InvalidInput naming the first bad field otherwise.
    No params, null and [] (how some Lua JSON encoders write {}) all mean {}."""
    if raw is None or raw == []:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput("params", f"expected an object, got {json_type(raw)}")
    try:
        return converter.structure(raw, cls)
    except ClassValidationError as exc:
        problems = _problems(exc, "")
        field, _, message = problems[0].partition(": ")
        raise InvalidInput(field, "; ".join([message, *problems[1:]])) from None


def unstructure(value: Any) -> Any:
    """A result as camelCase JSON."""
    return converter.unstructure(value)
