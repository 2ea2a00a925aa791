"""The Code Context protocol: the server's custom requests and their JSON shapes.

Params arrive as raw JSON (pygls knows no types for these methods) and are structured
here strictly: cattrs would otherwise turn 5 into "5" and "ab" into ["a", "b"], and a
wrong type must be a -32602 naming the field, not a guess. docs/protocol.md describes
the same messages for client authors.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from pygls.protocol.json_rpc import MsgId

from .search import InvalidInput
from .settings import camel

SEARCH = "codeContext/search"
SIMILAR = "codeContext/similar"
STATUS = "codeContext/status"
REINDEX = "codeContext/reindex"
CLEAR_INDEX = "codeContext/clearIndex"
METHODS = frozenset({SEARCH, SIMILAR, STATUS, REINDEX, CLEAR_INDEX})

T = TypeVar("T")


@attrs.define
class RawRequest:
    """How a codeContext/* request is read off the wire: params stay plain JSON.
    pygls would turn unknown params into namedtuples, losing keys like `type_name`."""

    id: MsgId
    method: str
    jsonrpc: str
    params: Any = None


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


@attrs.frozen
class StatusResponse:
    folders: list[FolderStatus]


@attrs.frozen
class ReindexResponse:
    started: bool


@attrs.frozen
class ClearIndexResponse:
    pass


_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


def _strict(tp: type) -> Any:
    def hook(value: Any, _: Any) -> Any:
        ok = isinstance(value, int | float) if tp is float else isinstance(value, tp)
        if not ok or (isinstance(value, bool) and tp is not bool):
            raise TypeError(f"expected {_EXPECTED[tp]}, got {_json_type(value)}")
        return value
    return hook


def _string_list(value: Any, _: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return value


def _json_type(value: Any) -> str:
    names = {bool: "boolean", str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    for tp in (str, int, float, bool):
        conv.register_structure_hook(tp, _strict(tp))
    conv.register_structure_hook_func(lambda tp: tp == list[str], _string_list)

    def structure(cls: type) -> Any:
        fn = make_dict_structure_fn(cls, conv, **{a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)})

        def objects_only(value: Any, tp: type) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {_json_type(value)}")
            return fn(value, tp)
        return objects_only

    def unstructure(cls: type) -> Any:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **renames)

    conv.register_structure_hook_factory(attrs.has, structure)
    conv.register_unstructure_hook_factory(attrs.has, unstructure)
    return conv


converter = _converter()


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
        raise InvalidInput("params", f"expected an object, got {_json_type(raw)}")
    try:
        return converter.structure(raw, cls)
    except ClassValidationError as exc:
        problems = _problems(exc, "")
        field, _, message = problems[0].partition(": ")
        raise InvalidInput(field, "; ".join([message, *problems[1:]])) from None


def unstructure(value: Any) -> Any:
    """A result as camelCase JSON."""
    return converter.unstructure(value)
