"""The one JSON converter: strict types and camelCase keys, for the protocol and the settings."""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


def _strict(tp: type) -> Any:
    def hook(value: Any, _: Any) -> Any:
        ok = isinstance(value, int | float) if tp is float else isinstance(value, tp)
        if not ok or (isinstance(value, bool) and tp is not bool):
            raise TypeError(f"expected {_EXPECTED[tp]}, got {json_type(value)}")
        return value
    return hook


def _string_list(value: Any, _: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return value


def json_type(value: Any) -> str:
    """How JSON names the type of a value, for messages: "string", "number", "null"."""
    names = {bool: "boolean", str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _converter() -> cattrs.Converter:
    """Strict: cattrs would otherwise turn 5 into "5" and "ab" into ["a", "b"]; a wrong type must be
    an error naming the field, not a guess. attrs classes read and write camelCase keys, and
    fields left at their default are left out of the JSON."""
    conv = cattrs.Converter()
    for tp in (str, int, float, bool):
        conv.register_structure_hook(tp, _strict(tp))
    conv.register_structure_hook_func(lambda tp: tp == list[str], _string_list)

    def renames(cls: type) -> dict[str, Any]:
        return {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}

    def structure(cls: type) -> Any:
        fn: Any = make_dict_structure_fn(cls, conv, **renames(cls))

        def objects_only(value: Any, tp: type) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {json_type(value)}")
            return fn(value, tp)
        return objects_only

    def unstructure(cls: type) -> Any:
        return make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True, **renames(cls))

    conv.register_structure_hook_factory(attrs.has, structure)
    conv.register_unstructure_hook_factory(attrs.has, unstructure)
    return conv


converter = _converter()
