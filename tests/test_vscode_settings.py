"""The VS Code extension's settings (vscode-client/package.json) are the server's settings (lsp_server/settings.py).

Every field of the attrs classes must be contributed as `codeContext.<section>.<camelName>` with the same JSON
type, the same default and the same valid range, and package.json must contribute nothing else outside the
client-only `server` and `trace` sections. Ranges are compared by behaviour: the attrs validator must accept
exactly the values the JSON schema's minimum/maximum accept.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest

from lsp_server import query
from lsp_server import settings as server_settings
from lsp_server.convert import camel

PACKAGE_JSON = Path(__file__).resolve().parents[1] / "vscode-client" / "package.json"
CLIENT_ONLY = ("codeContext.server.", "codeContext.trace.")


def _contributed() -> dict[str, dict[str, Any]]:
    manifest = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    properties = manifest["contributes"]["configuration"]["properties"]
    return {key: value for key, value in properties.items() if not key.startswith(CLIENT_ONLY)}


def _server_fields() -> dict[str, attrs.Attribute]:
    out: dict[str, attrs.Attribute] = {}
    attrs.resolve_types(server_settings.Settings)
    for section in attrs.fields(server_settings.Settings):
        attrs.resolve_types(section.type)
        for field in attrs.fields(section.type):
            out[f"codeContext.{camel(section.name)}.{camel(field.name)}"] = field
    return out


SERVER = _server_fields()
CONTRIBUTED = _contributed()


def _schema_type(tp: Any) -> dict[str, Any]:
    """The JSON-schema `type` (and `enum`/`items`) a VS Code setting needs to hold values of a Python type."""
    if typing.get_origin(tp) is typing.Literal:
        return {"type": "string", "enum": list(typing.get_args(tp))}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        assert len(args) == 1, f"unsupported union {tp}"
        inner = _schema_type(args[0])
        return {**inner, "type": [inner["type"], "null"]}
    if tp == list[str]:
        return {"type": "array", "items": {"type": "string"}}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    assert tp in simple, f"no JSON type for {tp}"
    return {"type": simple[tp]}


def _default(field: attrs.Attribute) -> Any:
    default = field.default
    return default.factory() if isinstance(default, attrs.Factory) else default  # type: ignore[arg-type]


def _accepts(field: attrs.Attribute, value: float) -> bool:
    if field.validator is None:
        return True
    try:
        field.validator(None, field, value)
    except ValueError:
        return False
    return True


def test_package_json_contributes_exactly_the_server_settings() -> None:
    assert sorted(CONTRIBUTED) == sorted(SERVER)


@pytest.mark.parametrize("key", sorted(SERVER))
def test_type_and_default_agree(key: str) -> None:
    field, prop = SERVER[key], CONTRIBUTED.get(key)
    assert prop is not None, f"{key} is a server setting that VS Code cannot set"
    expected = _schema_type(field.type)
    assert {k: prop.get(k) for k in expected} == expected, key
    assert prop["default"] == _default(field), key


@pytest.mark.parametrize("key", sorted(k for k, f in SERVER.items() if f.type in (int, float, int | None)))
def test_valid_range_agrees(key: str) -> None:
    field, prop = SERVER[key], CONTRIBUTED[key]
    # The smallest step of the setting's type: integers step by 1, seconds by a millisecond.
    step = 1 if field.type in (int, int | None) else 0.001
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None:
        assert _accepts(field, low) and not _accepts(field, low - step), f"{key}: minimum {low}"
    low_exclusive = prop.get("exclusiveMinimum")
    if low_exclusive is not None:
        assert _accepts(field, low_exclusive + step) and not _accepts(field, low_exclusive), f"{key}: exclusiveMinimum"
    if low is None and low_exclusive is None:
        assert _accepts(field, -1_000_000), f"{key}: the server has a minimum that package.json lacks"
    if high is not None:
        assert _accepts(field, high) and not _accepts(field, high + step), f"{key}: maximum {high}"
    else:
        assert _accepts(field, 1_000_000_000), f"{key}: the server has a maximum that package.json lacks"
    # The default itself must be valid on both sides.
    default = _default(field)
    if default is not None:
        assert _accepts(field, default)


def test_the_comparison_sees_a_difference() -> None:
    """The checks above are not vacuous: a changed default or range on either side would be noticed."""
    field = SERVER["codeContext.embedding.concurrency"]
    assert _default(field) == CONTRIBUTED["codeContext.embedding.concurrency"]["default"]
    assert not _accepts(field, CONTRIBUTED["codeContext.embedding.concurrency"]["minimum"] - 1)
    assert _schema_type(int | None) == {"type": ["integer", "null"]}
    assert _schema_type(query.Mode)["enum"] == list(query.MODES)
