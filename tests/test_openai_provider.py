"""OpenAIEmbedder against a real HTTP server speaking the OpenAI embeddings protocol.

No mocked client: requests go through the ``openai`` package and its transport, so status
mapping, timeouts and headers are the real ones.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import numpy as np
import pytest

from lsp_server.embedders import create_embedder
from lsp_server.embedding import EmbedderInfo, model_key
from lsp_server.errors import EmbeddingError
from lsp_server.openai_provider import (
    BYTES_PER_TOKEN,
    DEFAULT_MODEL,
    MAX_INPUT_TOKENS,
    OpenAIEmbedder,
    _retry_after,
    estimate_tokens,
    plan_batches,
    truncate,
)
from lsp_server.settings import EmbeddingSettings

try:  # tests/ may or may not become a package
    from .fake_openai_server import FakeOpenAIServer
except ImportError:
    from fake_openai_server import FakeOpenAIServer  # type: ignore[no-redef]

pytestmark = pytest.mark.timeout(30)

CANARY = "sk-canary-XYZ123"
DIM = 32

Make = Callable[..., OpenAIEmbedder]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(dimension=DIM) as srv:
        yield srv


@pytest.fixture
def make(server: FakeOpenAIServer) -> Iterator[Make]:
    """Embedders on the fake server with quick timeouts and backoff; closed afterwards."""
    made: list[OpenAIEmbedder] = []

    def factory(backoff_base: float = 0.01, **overrides: object) -> OpenAIEmbedder:
        fields: dict[str, object] = {"provider": "openai", "base_url": server.base_url, "timeout": 2.0,
                                     "max_retries": 3}
        fields.update(overrides)
        embedder = OpenAIEmbedder(EmbeddingSettings(**fields), backoff_base=backoff_base)  # type: ignore[arg-type]
        made.append(embedder)
        return embedder

    yield factory
    for embedder in made:
        embedder.close()


def texts(n: int, size: int = 20) -> list[str]:
    return [f"def function_{i}(): return {i}".ljust(size, "#") for i in range(n)]


def expected(server: FakeOpenAIServer, items: list[str], dimensions: int | None = None) -> np.ndarray:
    return np.stack([server.expected(t, dimensions) for t in items])


# -- the happy path ----------------------------------------------------------------------------


def test_vectors_in_input_order_normalised_float32(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(batch_size=3, concurrency=4)
    items = texts(20)
    server.latency = 0.01
    vectors = embedder.embed_documents(items)
    assert vectors.dtype == np.float32
    assert vectors.shape == (20, DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, expected(server, items), atol=1e-6)
    assert len(server.requests) == 7  # ceil(20 / 3)
    assert all(r.authorization == f"Bearer {CANARY}" for r in server.requests)
    assert all(r.model == DEFAULT_MODEL and r.path == "/v1/embeddings" for r in server.requests)


def test_embed_query_is_one_row(server: FakeOpenAIServer, make: Make) -> None:
    vector = make().embed_query("find the parser")
    assert vector.shape == (DIM,)
    np.testing.assert_allclose(vector, server.expected("find the parser"), atol=1e-6)


def test_empty_strings_are_sent_as_a_space(server: FakeOpenAIServer, make: Make) -> None:
    # The fake, like OpenAI, rejects "" with a 400.
    vectors = make().embed_documents(["", "x = 1"])
    assert vectors.shape == (2, DIM)
    assert server.requests[0].inputs == [" ", "x = 1"]


def test_create_embedder_and_model_key(server: FakeOpenAIServer) -> None:
    embedder = create_embedder(EmbeddingSettings(provider="openai", base_url=server.base_url))
    try:
        assert isinstance(embedder, OpenAIEmbedder)
        assert model_key(embedder) == f"openai:{DEFAULT_MODEL}:{DIM}"
    finally:
        embedder.close()  # type: ignore[attr-defined]


# -- dimension -----------------------------------------------------------------------------------


def test_dimension_probed_once_then_cached(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make()
    assert embedder.describe().dimension is None
    assert server.requests == []
    assert embedder.dimension == DIM
    assert embedder.dimension == DIM
    assert len(server.requests) == 1
    assert embedder.describe().dimension == DIM


def test_dimension_learned_from_first_response_without_probe(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make()
    embedder.embed_documents(texts(2))
    assert embedder.dimension == DIM
    assert len(server.requests) == 1


def test_dimensions_setting_forwarded_and_trusted(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(dimensions=16)
    assert embedder.dimension == 16
    assert embedder.embed_documents([]).shape == (0, 16)
    assert server.requests == []  # no probe needed
    vectors = embedder.embed_documents(["a", "b"])
    assert server.requests[0].dimensions == 16
    np.testing.assert_allclose(vectors, expected(server, ["a", "b"], 16), atol=1e-6)


def test_dimensions_not_sent_unless_set(server: FakeOpenAIServer, make: Make) -> None:
    make().embed_documents(["a"])
    assert "dimensions" not in server.requests[0].body


def test_server_ignoring_dimensions_is_a_config_error(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(dimensions=16)
    server.fail_next("wrong_dimension")  # answers 19 wide
    with pytest.raises(EmbeddingError) as info:
        embedder.embed_documents(["a"])
    assert not info.value.retryable
    assert "19-dimensional" in str(info.value) and "codeContext.embedding.dimensions" in str(info.value)
    assert len(server.requests) == 1


def test_inconsistent_dimension_is_an_error_not_a_result(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make()
    embedder.embed_documents(["a"])
    server.fail_next("wrong_dimension")
    with pytest.raises(EmbeddingError, match="35-dimensional vectors, expected 32"):
        embedder.embed_documents(["b", "c"])
    assert embedder.dimension == DIM
    assert embedder.embed_documents(["b"]).shape == (1, DIM)  # the next good response is fine


# -- transient faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["429", "500", "503", "hang", "malformed", "html", "wrong_count", "bad_index"])
def test_transient_fault_retried_and_counted(server: FakeOpenAIServer, make: Make, fault: str) -> None:
    embedder = make(timeout=0.3)
    server.fail_next(fault)
    items = texts(3)
    vectors = embedder.embed_documents(items)
    np.testing.assert_allclose(vectors, expected(server, items), atol=1e-6)
    assert [r.fault for r in server.requests] == [fault, None]
    assert embedder.retries == 1
    assert embedder.stats() == {"requests": 2, "retries": 1, "failures": 0}


def test_retry_after_is_honoured_instead_of_backoff(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(backoff_base=30.0)  # backoff alone would take far longer than the test allows
    server.fail_next("429", times=2, retry_after=0.2)
    start = time.monotonic()
    embedder.embed_documents(["a"])
    assert time.monotonic() - start < 5
    starts = [r.started for r in server.requests]
    assert len(starts) == 3
    assert all(later - earlier >= 0.19 for earlier, later in zip(starts, starts[1:]))
    assert embedder.retries == 2


def test_retry_bound_exceeded_is_retryable_error(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(max_retries=2)
    server.fail_next("500", times=10)
    with pytest.raises(EmbeddingError) as info:
        embedder.embed_documents(["a"])
    assert info.value.retryable
    assert "500" in str(info.value) and "gave up after 2 retries" in str(info.value)
    assert len(server.requests) == 3
    assert embedder.stats() == {"requests": 3, "retries": 2, "failures": 1}


def test_zero_retries_means_one_attempt(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(max_retries=0, timeout=0.3)
    server.fail_next("hang")
    with pytest.raises(EmbeddingError, match="timed out") as info:
        embedder.embed_documents(["a"])
    assert info.value.retryable
    assert len(server.requests) == 1 and embedder.retries == 0


def test_long_retry_after_is_left_for_the_next_sync(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make()
    server.fail_next("429", retry_after=3600)
    start = time.monotonic()
    with pytest.raises(EmbeddingError, match="wait 3600s") as info:
        embedder.embed_documents(["a"])
    assert info.value.retryable
    assert time.monotonic() - start < 2
    assert len(server.requests) == 1


def test_connection_refused_is_retryable() -> None:
    with FakeOpenAIServer() as gone:
        url = gone.base_url
    embedder = OpenAIEmbedder(EmbeddingSettings(provider="openai", base_url=url, max_retries=1, timeout=1.0),
                              backoff_base=0.01)
    try:
        with pytest.raises(EmbeddingError, match="cannot connect") as info:
            embedder.embed_documents(["a"])
        assert info.value.retryable and embedder.retries == 1
    finally:
        embedder.close()


def test_retry_after_header_forms() -> None:
    assert _retry_after({"retry-after": "1.5"}) == 1.5
    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({}) is None
    assert _retry_after({"retry-after": "soon"}) is None
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (_retry_after({"retry-after": date}) or 0) <= 30


# -- permanent faults -------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "words"), [
    ("401", ["authentication failed (401)", "$MY_EMBED_KEY"]),
    ("403", ["permission denied (403)", "$MY_EMBED_KEY"]),
    ("404", [f"model '{DEFAULT_MODEL}' not found (404)", "codeContext.embedding.model"]),
    ("400", ["request rejected (400)", "Invalid request"]),
])
def test_permanent_fault_not_retried(server: FakeOpenAIServer, make: Make, monkeypatch: pytest.MonkeyPatch,
                                     fault: str, words: list[str]) -> None:
    monkeypatch.setenv("MY_EMBED_KEY", CANARY)
    embedder = make(api_key_env="MY_EMBED_KEY")
    server.fail_next(fault)
    with pytest.raises(EmbeddingError) as info:
        embedder.embed_documents(["a"])
    assert not info.value.retryable
    for word in words:
        assert word in str(info.value)
    assert f"127.0.0.1:{server.port}" in str(info.value)
    assert len(server.requests) == 1 and embedder.retries == 0


def test_404_names_the_configured_model(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(model="no-such-model")
    server.fail_next("404")
    with pytest.raises(EmbeddingError, match="model 'no-such-model' not found"):
        embedder.embed_documents(["a"])
    assert server.requests[0].model == "no-such-model"


def test_failure_stops_sibling_batches(server: FakeOpenAIServer, make: Make) -> None:
    embedder = make(batch_size=1, concurrency=2)
    server.latency = 0.05
    server.fail_next("401")
    with pytest.raises(EmbeddingError, match="401"):
        embedder.embed_documents(texts(30))
    time.sleep(0.2)  # let requests already in flight land
    assert len(server.requests) < 10


def test_permanent_failure_beside_a_waiting_batch_is_reported_at_once(server: FakeOpenAIServer,
                                                                       make: Make) -> None:
    """One batch waits out a long Retry-After while its sibling gets a 401: the call fails with
    the 401 at once, the waiting batch stops, and no queued batch is sent with the bad key."""
    embedder = make(batch_size=1, concurrency=2)
    server.fail_next("429", retry_after=20)
    server.fail_next("401", times=100)
    start = time.monotonic()
    with pytest.raises(EmbeddingError) as info:
        embedder.embed_documents(texts(10))
    assert time.monotonic() - start < 5
    assert "authentication failed (401)" in str(info.value) and not info.value.retryable
    time.sleep(0.2)  # let anything still on its way land
    assert sorted(r.fault or "" for r in server.requests) == ["401", "429"]


def test_missing_key_without_base_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(EmbeddingError, match=r"set \$OPENAI_API_KEY") as info:
        OpenAIEmbedder(EmbeddingSettings(provider="openai"))
    assert not info.value.retryable


def test_missing_key_with_base_url_sends_placeholder(server: FakeOpenAIServer, make: Make,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    make().embed_documents(["a"])
    assert server.requests[0].authorization == "Bearer not-needed"


# -- batching and truncation ----------------------------------------------------------------


def test_token_budget_splits_requests(server: FakeOpenAIServer, make: Make) -> None:
    budget = 1000
    embedder = make(max_tokens_per_request=budget, batch_size=100, concurrency=1)
    items = texts(50, size=300)  # 100 estimated tokens each: 10 fit a request
    vectors = embedder.embed_documents(items)
    assert len(server.requests) == 5
    assert all(sum(estimate_tokens(t) for t in r.inputs) <= budget for r in server.requests)
    assert [t for r in server.requests for t in r.inputs] == items
    np.testing.assert_allclose(vectors, expected(server, items), atol=1e-6)


def test_batch_size_caps_inputs_per_request(server: FakeOpenAIServer, make: Make) -> None:
    make(batch_size=4, concurrency=1).embed_documents(texts(10))
    assert [len(r.inputs) for r in server.requests] == [4, 4, 2]


def test_mixed_sizes_never_exceed_budget(server: FakeOpenAIServer, make: Make) -> None:
    budget = 500
    embedder = make(max_tokens_per_request=budget, batch_size=8, concurrency=3)
    sizes = [10, 1400, 30, 700, 5, 5, 900, 1499, 1, 60] * 3
    items = [f"{i}:" + "y" * s for i, s in enumerate(sizes)]
    vectors = embedder.embed_documents(items)
    assert vectors.shape == (len(items), DIM)
    assert all(len(r.inputs) <= 8 and sum(estimate_tokens(t) for t in r.inputs) <= budget
               for r in server.requests)
    # Inputs longer than the whole budget were cut to it, not failed.
    assert max(len(t) for r in server.requests for t in r.inputs) <= budget * BYTES_PER_TOKEN


def test_overlong_input_truncated_not_failed(server: FakeOpenAIServer, make: Make) -> None:
    server.max_input_bytes = MAX_INPUT_TOKENS * BYTES_PER_TOKEN  # longer inputs get a 400
    embedder = make()
    huge = "x = 'é'\n" * 20_000  # 180k bytes, non-ASCII
    vectors = embedder.embed_documents(["short", huge])
    sent = server.requests[0].inputs[1]
    assert len(server.requests) == 1
    assert huge.startswith(sent) and len(sent.encode()) <= MAX_INPUT_TOKENS * BYTES_PER_TOKEN
    np.testing.assert_allclose(vectors[1], server.expected(sent), atol=1e-6)


def test_truncate_and_plan_helpers() -> None:
    assert truncate("abc", 5) == "abc"
    cut = truncate("€" * 10, 4)  # 3 bytes each: 12 bytes fit, so 4 whole characters
    assert cut == "€" * 4
    assert estimate_tokens("") == 1 and estimate_tokens("a" * 30) == 10
    plan = list(plan_batches(["a" * 30] * 5, max_inputs=10, max_tokens=25))
    assert [len(batch) for batch in plan] == [2, 2, 1]


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrency_bounded(server: FakeOpenAIServer, make: Make, concurrency: int) -> None:
    server.latency = 0.03
    embedder = make(batch_size=2, concurrency=concurrency)
    items = texts(24)
    vectors = embedder.embed_documents(items)
    np.testing.assert_allclose(vectors, expected(server, items), atol=1e-6)
    assert len(server.requests) == 12
    assert server.max_in_flight <= concurrency
    if concurrency > 1:
        assert server.max_in_flight > 1


def test_bound_shared_by_concurrent_callers(server: FakeOpenAIServer, make: Make) -> None:
    server.latency = 0.05
    embedder = make(concurrency=1)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda i=i: results.append(embedder.embed_documents([f"t{i}"])))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(server.requests) == 4
    assert server.max_in_flight == 1


# -- privacy ---------------------------------------------------------------------------------


def test_key_never_in_logs_errors_or_describe(server: FakeOpenAIServer, make: Make,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpcore2", "lsp_server"):
        caplog.set_level(logging.DEBUG, logger=name)
    embedder = make()
    server.fail_next("500")
    embedder.embed_documents(["a", "b"])
    errors: list[EmbeddingError] = []
    for fault in ("401", "400"):  # both bodies echo the Authorization header
        server.fail_next(fault)
        with pytest.raises(EmbeddingError) as info:
            embedder.embed_documents(["c"])
        errors.append(info.value)

    assert server.requests[0].authorization == f"Bearer {CANARY}"  # the key was really in play
    assert "<redacted>" in str(errors[1])  # the 400's echoed key was scrubbed, the rest kept
    assert caplog.records, "expected DEBUG records from the client stack"
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    assert CANARY not in logged
    for error in errors:
        assert error.__cause__ is None and error.__context__ is None
        assert CANARY not in "".join(traceback.format_exception(error))
    assert CANARY not in repr(embedder) and CANARY not in str(embedder.describe())


def test_describe_shows_host_only(server: FakeOpenAIServer, make: Make) -> None:
    assert make(model="m").describe() == EmbedderInfo("openai", "m", None, f"127.0.0.1:{server.port}")
    official = OpenAIEmbedder(EmbeddingSettings(provider="openai"))
    try:
        assert official.describe().base_url == "api.openai.com"
        assert official.model == DEFAULT_MODEL
    finally:
        official.close()


# -- through the engine: WorkspaceIndex, sync_workspace and search on a real Milvus Lite store ------

from pathlib import Path  # noqa: E402

from lsp_server.index import WorkspaceIndex  # noqa: E402
from lsp_server.search import search  # noqa: E402
from lsp_server.settings import Settings  # noqa: E402
from lsp_server.sync import embed_text, sync_workspace  # noqa: E402

# Wide enough that the fake server's hash vectors rank the fixture's code like the hash embedder.
ENGINE_DIM = 256


@pytest.fixture
def open_index(server: FakeOpenAIServer, workspace: Path) -> Iterator[Callable[..., WorkspaceIndex]]:
    """WorkspaceIndexes of the fixture workspace (8 chunks) embedded by the fake server, with
    small batches so one sync makes several requests; closed afterwards."""
    server.semantic = True
    opened: list[WorkspaceIndex] = []

    def factory(**overrides: object) -> WorkspaceIndex:
        fields: dict[str, object] = {"provider": "openai", "base_url": server.base_url, "model": "fake-embed",
                                     "dimensions": ENGINE_DIM, "batch_size": 2, "concurrency": 2,
                                     "timeout": 2.0, "max_retries": 5}
        fields.update(overrides)
        settings = Settings(embedding=EmbeddingSettings(**fields))  # type: ignore[arg-type]
        index = WorkspaceIndex(workspace, settings, embedder=OpenAIEmbedder(settings.embedding, backoff_base=0.01))
        opened.append(index)
        return index

    yield factory
    for index in opened:
        index.close()


def _top_path(index: WorkspaceIndex, mode: str = "semantic") -> str:
    return search(index, "retry failed http requests", limit=3, mode=mode)[0].path


def _cached(index: WorkspaceIndex) -> list[np.ndarray | None]:
    """The embedding cache's vectors for every chunk in the store."""
    texts = [embed_text(r) for path in index.files.all() for r in index.store.chunks_of(path)]
    assert texts
    return index.cache.get_many(model_key(index.embedder), texts)


def test_engine_indexes_through_transient_faults(server: FakeOpenAIServer,
                                                 open_index: Callable[..., WorkspaceIndex]) -> None:
    index = open_index(timeout=0.5)
    faults = ["429", "500", "hang", "malformed"]
    server.fail_next("429", retry_after=0.05)
    for fault in faults[1:]:
        server.fail_next(fault)
    stats = sync_workspace(index)
    assert stats.error is None and stats.pending == 0
    assert stats.embedded == stats.chunks == index.store.count() == 8
    assert index.store.count_pending() == 0
    assert sorted(r.fault for r in server.requests if r.fault) == sorted(faults)
    assert index.embedder.stats() == {"requests": len(server.requests), "retries": 4, "failures": 0}  # type: ignore[attr-defined]
    # The vectors stored are the server's, in the right rows: meaning-based search finds the code.
    assert _top_path(index) == "src/http_client.py"
    assert all(v is not None for v in _cached(index))
    assert index.status().pending_chunks == 0 and index.status().last_error is None


def test_engine_auth_failure_one_error_files_pending_then_good_key(
        server: FakeOpenAIServer, open_index: Callable[..., WorkspaceIndex], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server.api_key = "sk-the-right-one"  # the environment holds CANARY: every request gets a 401
    index = open_index(batch_size=1, concurrency=2)  # 8 batches: 8 chances to report the same error
    stats = sync_workspace(index)

    assert stats.error is not None
    assert "authentication failed (401)" in stats.error and "$OPENAI_API_KEY" in stats.error
    assert f"127.0.0.1:{server.port}" in stats.error
    # One error: the first 401 stops the batches beside it (at most `concurrency` requests were
    # sent), nothing is retried, one warning is logged.
    assert 1 <= len(server.requests) <= 2 and all(r.fault is None for r in server.requests)
    assert index.embedder.stats()["retries"] == 0  # type: ignore[attr-defined]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "401" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    status = index.status()
    assert status.state == "error" and status.last_error == stats.error
    assert status.chunks == status.pending_chunks == stats.pending == 8
    assert index.files.count(done_only=True) == 7  # the files are in, their vectors pending
    assert _top_path(index, "keyword") == "src/http_client.py"
    assert _top_path(index, "hybrid") == "src/http_client.py"
    assert all(v is None for v in _cached(index))
    index.close()

    # The user sets the right key: the next sync embeds exactly what was pending.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-right-one")
    server.reset()
    index = open_index()
    stats = sync_workspace(index)
    assert stats.error is None and stats.changed_files == 0
    assert stats.embedded == 8 and stats.pending == 0 and index.store.count_pending() == 0
    assert all(r.authorization == "Bearer sk-the-right-one" for r in server.requests)
    assert _top_path(index) == "src/http_client.py"


@pytest.mark.parametrize(("fault", "message"), [
    ("wrong_count", "returned 1 vectors for 2 inputs"),
    ("wrong_dimension", "259-dimensional vectors, expected 256"),
])
def test_engine_never_stores_a_bad_response(server: FakeOpenAIServer, open_index: Callable[..., WorkspaceIndex],
                                            fault: str, message: str) -> None:
    index = open_index(max_retries=1)
    server.fail_next(fault, times=10**6)
    stats = sync_workspace(index)
    assert stats.error is not None and message in stats.error
    assert stats.embedded == 0
    assert index.store.count() == index.store.count_pending() == 8
    assert all(v is None for v in _cached(index))  # not in the cache either
    probe = server.expected("retry failed http requests", ENGINE_DIM)
    assert index.store.dense_search(probe, 10) == []  # no row has a vector

    server.reset()  # the server behaves again: everything is embedded with the right vectors
    stats = sync_workspace(index)
    assert stats.error is None and stats.embedded == 8 and index.store.count_pending() == 0
    vectors = _cached(index)
    texts = [embed_text(r) for path in index.files.all() for r in index.store.chunks_of(path)]
    for text, vector in zip(texts, vectors):
        np.testing.assert_allclose(vector, server.expected(text, ENGINE_DIM), atol=1e-6)
    assert _top_path(index) == "src/http_client.py"


def test_engine_model_change_gets_a_new_collection_and_reembeds(
        server: FakeOpenAIServer, open_index: Callable[..., WorkspaceIndex]) -> None:
    index = open_index(model="model-a")
    assert sync_workspace(index).embedded == 8
    first = index.store.collection
    index.close()

    server.reset()
    index = open_index(model="model-b")
    stats = sync_workspace(index)
    assert index.store.collection != first
    assert model_key(index.embedder) == f"openai:model-b:{ENGINE_DIM}"
    assert stats.changed_files == 7 and stats.embedded == 8 and stats.cached == 0, stats
    assert server.requests and {r.model for r in server.requests} == {"model-b"}
    assert _top_path(index) == "src/http_client.py"
    index.close()

    server.reset()  # back to model-a: its vectors are still cached, nothing is sent
    index = open_index(model="model-a")
    stats = sync_workspace(index)
    assert index.store.collection == first
    assert stats.error is None and stats.embedded == 0 and index.store.count_pending() == 0
    assert server.requests == []


def test_engine_key_never_in_logs_or_status(server: FakeOpenAIServer, open_index: Callable[..., WorkspaceIndex],
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpcore", "lsp_server", "pymilvus"):
        caplog.set_level(logging.DEBUG, logger=name)
    index = open_index(max_retries=1)
    server.fail_next("500")  # a retry is logged
    server.fail_next("400")  # the fake echoes the Authorization header in this error ...
    first = sync_workspace(index)
    server.fail_next("401")  # ... and in this one
    index.store.recreate()
    index.files.clear()
    second = sync_workspace(index)
    status = index.status()
    third = sync_workspace(index)

    assert any(r.authorization == f"Bearer {CANARY}" for r in server.requests)  # the key was in play
    assert first.error and "request rejected (400)" in first.error and "<redacted>" in first.error
    assert second.error and "authentication failed (401)" in second.error
    assert status.last_error == second.error and status.pending_chunks == 8
    assert third.error is None and third.embedded == 8
    assert status.embedding == EmbedderInfo("openai", "fake-embed", ENGINE_DIM, f"127.0.0.1:{server.port}")
    assert any("retry 1 of 1" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    everything = logged + repr(status) + repr([first, second, third, index.status()])
    assert CANARY not in everything
