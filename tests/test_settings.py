"""settings.py alone: every key defaulted, a bad key costs only itself and is named."""

from __future__ import annotations

from lsp_server import query
from lsp_server.settings import Settings, layered, parse


def test_defaults_are_offline() -> None:
    s, bad = parse(None)
    assert bad == [] and s == Settings()
    assert (s.embedding.provider, s.store.uri, s.search.mode, s.index.redact_secrets) == ("local", None, "hybrid", True)


def test_a_bad_key_is_named_and_the_rest_still_applies() -> None:
    s, bad = parse({"embedding": {"provider": "hash", "batchSize": "32", "bogus": 1}, "search": {"limit": 500},
                    "index": {"include": ["src/**"]}})
    assert sorted(bad) == ["embedding.batchSize", "embedding.bogus", "search.limit"]
    assert s.embedding.provider == "hash" and s.embedding.batch_size == 32 and s.search.limit == 10
    assert s.index.include == ["src/**"]


def test_types_are_strict() -> None:
    for raw in ({"search": {"limit": True}}, {"search": {"limit": 2.5}}, {"index": {"include": "src"}},
                {"embedding": {"timeout": "30"}}, {"search": {"mode": "fuzzy"}}, {"embedding": {"model": 3}}):
        assert parse(raw)[1], raw


def test_layers_later_wins_per_key_and_a_non_object_is_named() -> None:
    s, bad = layered([("initializationOptions", {"embedding": {"provider": "hash", "batchSize": 8}}),
                      ("configuration", {"embedding": {"batchSize": 16}}), ("other", "not an object")])
    assert (s.embedding.provider, s.embedding.batch_size) == ("hash", 16)
    assert bad == ["other (expected an object)"]


def test_the_limit_rule_is_the_requests() -> None:
    assert parse({"search": {"limit": query.MAX_LIMIT}})[1] == []
    assert parse({"search": {"limit": query.MAX_LIMIT + 1}})[1] == ["search.limit"]
