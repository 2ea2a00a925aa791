"""The one settings object, parsed from camelCase JSON into fully defaulted attrs classes.

The same model serves the language server (initializationOptions, workspace/configuration)
and the CLI (flags and CODE_CONTEXT_* variables). A bad key never stops the tool: it is
reported by its dotted name and its default is used.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

Provider = Literal["local", "openai", "hash"]
Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")


def _positive(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1")


def _limit(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if not 1 <= value <= 100:
        raise ValueError(f"{attribute.name} must be between 1 and 100")


@attrs.define
class EmbeddingSettings:
    provider: Provider = "local"
    # None means the provider's default model.
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: int = attrs.field(default=32, validator=_positive)
    dimensions: int | None = None
    concurrency: int = attrs.field(default=4, validator=_positive)
    max_tokens_per_request: int = attrs.field(default=100_000, validator=_positive)
    timeout: float = 30.0
    max_retries: int = 5


@attrs.define
class StoreSettings:
    # None: the embedded Milvus Lite file in the user's cache directory.
    uri: str | None = None
    token_env: str | None = None


@attrs.define
class IndexSettings:
    include: list[str] = attrs.Factory(list)
    exclude: list[str] = attrs.Factory(list)
    max_file_size_kb: int = attrs.field(default=1024, validator=_positive)
    respect_gitignore: bool = True
    # Replace secrets (private keys, cloud and service tokens, passwords) in file text before
    # it is stored or embedded; see lsp_server/redaction.py.
    redact_secrets: bool = True


@attrs.define
class SearchSettings:
    limit: int = attrs.field(default=10, validator=_limit)
    mode: Mode = "hybrid"


@attrs.define
class Settings:
    embedding: EmbeddingSettings = attrs.Factory(EmbeddingSettings)
    store: StoreSettings = attrs.Factory(StoreSettings)
    index: IndexSettings = attrs.Factory(IndexSettings)
    search: SearchSettings = attrs.Factory(SearchSettings)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def structure_hook(cls: type) -> Any:
        overrides = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **overrides)

    def unstructure_hook(cls: type) -> Any:
        overrides = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, **overrides)

    conv.register_structure_hook_factory(attrs.has, structure_hook)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_hook)
    return conv


converter = _camel_converter()


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two raw settings dicts; the later source wins per key."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_PRIMITIVES: dict[Any, tuple[type, ...]] = {
    int: (int,), float: (int, float), str: (str,), bool: (bool,),
    int | None: (int, type(None)), str | None: (str, type(None)), list[str]: (list,),
}


def _check_primitive(tp: Any, value: Any) -> None:
    """cattrs coerces "5" to 5 and 1.5 to 1; settings from JSON should be the declared type."""
    allowed = _PRIMITIVES.get(tp)
    if allowed is None:
        return
    if isinstance(value, bool) and bool not in allowed:
        raise TypeError("boolean where a number or string was expected")
    if not isinstance(value, allowed):
        raise TypeError(f"expected {tp}")
    if tp == list[str] and not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")


def _structure(cls: type, raw: dict[str, Any], prefix: str, bad: list[str]) -> Any:
    """Build cls field by field, so one bad key costs only that key."""
    attrs.resolve_types(cls)
    known = {camel(a.name): a for a in attrs.fields(cls)}
    bad.extend(f"{prefix}{key}" for key in raw if key not in known)
    kwargs: dict[str, Any] = {}
    for key, field in known.items():
        if key not in raw:
            continue
        value = raw[key]
        try:
            if attrs.has(field.type):
                if not isinstance(value, dict):
                    raise TypeError("expected an object")
                kwargs[field.name] = _structure(field.type, value, f"{prefix}{key}.", bad)
                continue
            if value is None and field.default is not None and not isinstance(field.default, attrs.Factory):
                raise TypeError("null")
            structured = converter.structure(value, field.type)
            _check_primitive(field.type, value)
            if field.validator is not None:
                field.validator(None, field, structured)
            kwargs[field.name] = structured
        except Exception:  # any failure to structure means: ignore this key
            bad.append(f"{prefix}{key}")
    return cls(**kwargs)


def parse(raw: Any) -> tuple[Settings, list[str]]:
    """Settings from raw JSON, and the dotted names of any keys that were invalid and ignored."""
    if raw is None:
        return Settings(), []
    if not isinstance(raw, dict):
        return Settings(), ["(root): expected an object"]
    bad: list[str] = []
    return _structure(Settings, raw, "", bad), bad


def to_dict(settings: Settings) -> dict[str, Any]:
    return converter.unstructure(settings)
