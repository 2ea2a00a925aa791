"""protocol.py alone: params are read strictly and errors name the field; results are camelCase."""

from __future__ import annotations

import pytest

from lsp_server import protocol
from lsp_server.errors import InvalidInput


@pytest.mark.parametrize("raw,field,message", [
    ({"query": 5}, "query", "expected a string, got number"),
    ({"query": "x", "limit": "5"}, "limit", "expected an integer, got string"),
    ({"query": "x", "limit": True}, "limit", "expected an integer, got boolean"),
    ({"query": "x", "include": "src/**"}, "include", "expected a list of strings"),
    ({}, "query", "required"),
    ("text", "params", "expected an object, got string"),
])
def test_search_params_are_strict_and_name_the_field(raw: object, field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        protocol.structure(raw, protocol.SearchParams)
    assert info.value.field == field and message in str(info.value)


def test_absent_null_and_empty_list_params_mean_an_empty_object() -> None:
    for raw in (None, [], {}):
        assert protocol.structure(raw, protocol.StatusParams) == protocol.StatusParams()
    assert protocol.structure({"workspaceFolder": None}, protocol.ReindexParams) == protocol.ReindexParams()


def test_nested_fields_are_named_by_their_path() -> None:
    with pytest.raises(InvalidInput) as info:
        protocol.structure({"uri": "file:///a", "range": {"start": {"line": "0", "character": 0},
                                                          "end": {"line": 1, "character": 0}}}, protocol.SimilarParams)
    assert info.value.field == "range.start.line"


def test_results_are_camel_case_and_leave_out_absent_fields() -> None:
    rng = protocol.Range(protocol.Position(0, 0), protocol.Position(3, 0))
    out = protocol.unstructure(protocol.SearchResponse([protocol.SearchResult("file:///a.py", rng, 0.5, "python", "x")],
                                                       partial=True))
    assert out == {"results": [{"uri": "file:///a.py", "range": {"start": {"line": 0, "character": 0},
                                                                  "end": {"line": 3, "character": 0}},
                                "score": 0.5, "language": "python", "content": "x"}], "partial": True}
