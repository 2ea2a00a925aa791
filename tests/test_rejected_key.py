"""Issue 18, item 2: an API key the embedding endpoint rejects must not leave the user with nothing.

A real language server process (tests/lsp_raw.py) embeds through the OpenAI-compatible fake
server on loopback, which answers 401 to any key but the good one. No `embedding.dimensions`
is set and the model is not one whose dimension is known, so the store cannot learn the
vector size from a first successful call: the chunks must go in without vectors, keyword
search must answer (marked partial), the folder must say `error` with the reason, and the
user must get one message naming the fix. Once the key works (the endpoint accepts it, or
the settings name another variable), the vectors are computed for the chunks already
stored: no file is read or chunked again.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lsp_server import store_uri
from lsp_server import sync as sync_mod
from lsp_server.embedding import model_key
from lsp_server.errors import EmbeddingError
from lsp_server.index import PROVISIONAL_KEY, WorkspaceIndex, collection_name
from lsp_server.locations import index_dir_for
from lsp_server.openai_provider import PROBE_TEXT, OpenAIEmbedder
from lsp_server.search import search
from lsp_server.settings import EmbeddingSettings, parse
from lsp_server.sync import sync_paths, sync_workspace
from lsp_server.verify import verify

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer  # noqa: E402
from lsp_raw import RawServer, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(180)

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"
BAD_KEY = "sk-bad-canary-8675309"
GOOD_KEY = "sk-good-canary-1123581"
FIXTURE_FILES = 7


def chunk_ids(cache: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """path -> the chunk ids state.db records for it (what a re-chunk would rewrite)."""
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(cache))
    db = sqlite3.connect(index_dir_for(root.resolve()) / "state.db")
    try:
        return dict(db.execute("SELECT path, ids FROM files WHERE state='done'").fetchall())
    finally:
        db.close()


def summaries(server: RawServer, root: Path) -> list[str]:
    """The server's one-line summaries of its full syncs ("7 files, 0 changed, 0.1 s")."""
    prefix = f"indexing {root}: "
    return [m.split(prefix, 1)[1] for m in server.messages("window/logMessage") if prefix in m]


def assert_rejected_but_searchable(server: RawServer, fake: FakeOpenAIServer, host: str) -> None:
    """The state the user is left in by a rejected key: words work, the folder says why."""
    folder = server.wait_idle()[0]
    # The folder says what is wrong, and holds every chunk, without vectors.
    assert folder["state"] == "error", folder
    assert "401" in folder["lastError"] and host in folder["lastError"], folder
    assert "CC_TEST_EMBED_KEY" in folder["lastError"], folder
    assert folder["indexedFiles"] == FIXTURE_FILES, folder
    assert folder["chunks"] > 0 and folder["pendingChunks"] == folder["chunks"], folder
    assert fake.requests and all(r.authorization == f"Bearer {BAD_KEY}" for r in fake.requests)
    assert len(fake.requests) <= 2, [r.inputs for r in fake.requests]  # a probe per attempt, not one per batch

    # Keyword results, marked partial, from hybrid (the default) and keyword mode.
    for mode in ("hybrid", "keyword"):
        answer = server.search("fetch_with_retry", mode=mode)
        assert answer["partial"] is True, (mode, answer)
        assert answer["results"], mode
        assert answer["results"][0]["uri"].endswith("src/http_client.py"), (mode, answer["results"][0])
    # Semantic search has no vectors to search: an error that says why.
    semantic = server.call("codeContext/search", {"query": "retry failed requests", "mode": "semantic"})
    assert "error" in semantic and "401" in semantic["error"]["message"], semantic

    # Exactly one message, naming the endpoint, the variable and what to do.
    time.sleep(0.5)  # a second message, if any, would be here by now
    shown = server.messages()
    assert len(shown) == 1, shown
    assert host in shown[0] and "CC_TEST_EMBED_KEY" in shown[0] and "401" in shown[0], shown
    assert "Reindex" in shown[0] and "keyword search" in shown[0], shown
    assert len(summaries(server, server.folders[0])) == 1
    assert ", 7 changed" in summaries(server, server.folders[0])[0]


def assert_resumed(server: RawServer, fake: FakeOpenAIServer, requests_before_fix: int, syncs_before: int,
                   ids_before: dict[str, str], ids_now: Callable[[], dict[str, str]]) -> None:
    """Vectors for the chunks already stored, without any file read or chunked again."""
    root = server.folders[0]
    wait_for(lambda: len(summaries(server, root)) > syncs_before, timeout=60, what="a new sync summary")
    folder = server.wait_idle()[0]
    assert folder["state"] == "idle" and "lastError" not in folder, folder
    assert folder["pendingChunks"] == 0 and folder["chunks"] > 0, folder
    assert folder["embedding"]["dimension"] == 48, folder

    # Nothing was read or chunked again: the resumed sync changed no file, the ids stand.
    resumed = summaries(server, root)[syncs_before:]
    assert resumed and all(", 0 changed" in s for s in resumed), resumed
    assert ids_now() == ids_before
    embedded = [t for r in fake.requests[requests_before_fix:] for t in r.inputs if t != PROBE_TEXT]
    assert len(embedded) == folder["chunks"], (len(embedded), folder["chunks"])

    # Vectors answer now: semantic finds by meaning, hybrid is complete.
    answer = server.search("retry failed http requests", mode="semantic", limit=3)
    assert answer["results"][0]["uri"].endswith("src/http_client.py"), answer["results"][0]
    answer = server.search("fetch_with_retry")
    assert answer["partial"] is False and answer["results"][0]["uri"].endswith("src/http_client.py")


@pytest.mark.parametrize("fix", ["reindex", "settings", "restart"])
def test_rejected_key_keeps_keyword_search_and_resumes_without_rechunking(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fix: str) -> None:
    """reindex: the endpoint accepts the key again and the user reindexes; settings: the user
    points codeContext.embedding.apiKeyEnv at a good key; restart: the server is started
    again with a good key (what VS Code's "Set API Key" does)."""
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    cache = tmp_path / "cache"
    with FakeOpenAIServer(dimension=48, semantic=True, api_key=GOOD_KEY) as fake:
        host = f"127.0.0.1:{fake.port}"
        embedding = {"provider": "openai", "baseUrl": fake.base_url, "model": "fake-embed",
                     "apiKeyEnv": "CC_TEST_EMBED_KEY", "maxRetries": 1, "timeout": 5}
        env = {"CC_TEST_EMBED_KEY": BAD_KEY, "CC_TEST_OTHER_KEY": GOOD_KEY}
        seen = ""
        with RawServer([root], cache_dir=cache, init_options={"embedding": embedding}, env=env) as server:
            assert_rejected_but_searchable(server, fake, host)
            ids_before = chunk_ids(cache, root, monkeypatch)
            assert len(ids_before) == FIXTURE_FILES and all(ids_before.values())
            requests_before_fix = len(fake.requests)
            if fix == "reindex":
                fake.api_key = BAD_KEY  # the endpoint now accepts the key the user has
                assert server.request("codeContext/reindex", {})["started"] is True
            elif fix == "settings":
                server.notify("workspace/didChangeConfiguration", {"settings": {"codeContext": {
                    "embedding": {**embedding, "apiKeyEnv": "CC_TEST_OTHER_KEY"}}}})
            if fix != "restart":
                assert_resumed(server, fake, requests_before_fix, 1, ids_before,
                               lambda: chunk_ids(cache, root, monkeypatch))
                assert len(server.messages()) == 1, server.messages()  # nothing more to tell
            seen += repr(server.status()) + repr(server.notifications) + server.log_text()
        if fix == "restart":
            env["CC_TEST_EMBED_KEY"] = GOOD_KEY
            with RawServer([root], cache_dir=cache, init_options={"embedding": embedding}, env=env) as server:
                assert_resumed(server, fake, requests_before_fix, 0, ids_before,
                               lambda: chunk_ids(cache, root, monkeypatch))
                assert server.messages() == []
                seen += repr(server.status()) + repr(server.notifications) + server.log_text()
        assert BAD_KEY not in seen and GOOD_KEY not in seen


# -- the engine, in this process ---------------------------------------------------------------


@pytest.fixture
def engine_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture workspace and a private cache; returns the workspace."""
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    return root


def open_openai_index(root: Path, fake: FakeOpenAIServer) -> WorkspaceIndex:
    settings, bad = parse({"embedding": {"provider": "openai", "baseUrl": fake.base_url, "model": "fake-embed",
                                         "apiKeyEnv": "CC_ENGINE_KEY", "maxRetries": 0, "timeout": 5}})
    assert bad == []
    return WorkspaceIndex(root, settings)


def close_index(index: WorkspaceIndex) -> None:
    uri = index.store_uri
    index.close()
    store_uri.release_local(uri)  # so that the next open starts from the files on disk


def test_openai_models_have_known_dimensions_without_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """At OpenAI, the store can open (and chunks go in) before any request succeeds."""
    monkeypatch.setenv("OPENAI_API_KEY", BAD_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for model, dimension in (("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072),
                             ("text-embedding-ada-002", 1536)):
        embedder = OpenAIEmbedder(EmbeddingSettings(provider="openai", model=model, timeout=1, max_retries=0))
        try:
            assert embedder.describe().dimension == dimension
            assert embedder.dimension == dimension and model_key(embedder) == f"openai:{model}:{dimension}"
            assert embedder.stats()["requests"] == 0  # known, not asked
        finally:
            embedder.close()
    # Elsewhere the name may mean another model (a gateway, a local server): it is asked.
    with FakeOpenAIServer(dimension=48) as fake:
        embedder = OpenAIEmbedder(EmbeddingSettings(provider="openai", base_url=fake.base_url,
                                                    model="text-embedding-3-small", timeout=5, max_retries=0))
        try:
            assert embedder.describe().dimension is None
            assert embedder.dimension == 48 and len(fake.requests) == 1
        finally:
            embedder.close()


def test_edits_while_the_key_is_rejected_are_searchable_then_embedded(
        engine_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = engine_env
    monkeypatch.setenv("CC_ENGINE_KEY", BAD_KEY)
    with FakeOpenAIServer(dimension=48, semantic=True, api_key=GOOD_KEY) as fake:
        index = open_openai_index(root, fake)
        try:
            stats = sync_workspace(index)
            assert stats.error and "401" in stats.error and stats.vectors_failed
            assert stats.changed_files == FIXTURE_FILES and stats.pending == stats.chunks > 0
            assert index.state.state == "error" and index.vector_key is None
            provisional = collection_name(index.root, PROVISIONAL_KEY)
            assert index.store.collection == provisional

            # An edit while rejected: in the keyword index at once, no request sent for it.
            sent = len(fake.requests)
            (root / "src" / "ledger.py").write_text(
                "def reconcile_ledger_balances(ledger):\n    return sum(e.amount for e in ledger)\n")
            edit = sync_paths(index, ["src/ledger.py"])
            assert edit.changed_files == 1 and len(fake.requests) == sent
            hits = search(index, "reconcile_ledger_balances", mode="keyword")
            assert hits and hits[0].path == "src/ledger.py"
            with pytest.raises(EmbeddingError, match="401"):
                search(index, "reconcile ledger balances", mode="semantic")

            fake.api_key = BAD_KEY  # the endpoint accepts the key now
            resumed = sync_workspace(index)
            assert resumed.error is None and resumed.changed_files == 0, resumed
            assert resumed.embedded == stats.chunks + 1 and resumed.pending == 0  # every chunk, once
            assert index.vector_key == "openai:fake-embed:48" and index.store.collection != provisional
            assert index.status().pending_chunks == 0 and index.state.state == "idle"
            assert not index.store._client.has_collection(provisional)  # dropped once adopted
            assert search(index, "reconcile ledger balances", mode="semantic")[0].path == "src/ledger.py"
            assert verify(index).ok
        finally:
            close_index(index)


def test_key_revoked_before_a_restart_keeps_the_vectors(engine_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder indexed with this model before needs no answer to open: the snapshot's key
    holds the dimension, so nothing is chunked again and the vectors stay searchable."""
    root = engine_env
    monkeypatch.setenv("CC_ENGINE_KEY", GOOD_KEY)
    with FakeOpenAIServer(dimension=48, semantic=True, api_key=GOOD_KEY) as fake:
        index = open_openai_index(root, fake)
        try:
            first = sync_workspace(index)
            assert first.error is None and first.pending == 0
        finally:
            close_index(index)
        monkeypatch.setenv("CC_ENGINE_KEY", BAD_KEY)  # revoked while the server was down
        index = open_openai_index(root, fake)
        try:
            again = sync_workspace(index)
            assert again.changed_files == 0 and again.error is None, again
            assert index.vector_key == "openai:fake-embed:48"
            assert index.status().chunks == first.chunks and index.status().pending_chunks == 0
            assert index.embedder.describe().dimension == 48
            hits = search(index, "fetch_with_retry")  # hybrid: the query cannot be embedded, words answer
            assert hits and hits[0].path == "src/http_client.py"
        finally:
            close_index(index)


def test_an_edit_racing_the_move_lands_in_the_models_collection(
        engine_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows for a saved file are built (on the edit lane) against the provisional collection;
    the sync lane moves the chunks to the model's collection before they are written: they
    go in with the model's dimension, not the provisional one."""
    root = engine_env
    monkeypatch.setenv("CC_ENGINE_KEY", BAD_KEY)
    with FakeOpenAIServer(dimension=48, semantic=True, api_key=GOOD_KEY) as fake:
        index = open_openai_index(root, fake)
        try:
            assert sync_workspace(index).vectors_failed and index.vector_key is None
            fake.api_key = BAD_KEY  # accepted from now on
            built = sync_mod._rows

            def rows_then_move(*args, **kwargs):  # type: ignore[no-untyped-def]
                rows = built(*args, **kwargs)
                if index.vector_key is None:
                    index.vector_store()  # what a sync on the other lane does meanwhile
                return rows

            monkeypatch.setattr(sync_mod, "_rows", rows_then_move)
            (root / "src" / "ledger.py").write_text("def reconcile_ledger_balances(ledger):\n    return 0\n")
            assert sync_paths(index, ["src/ledger.py"]).changed_files == 1
            assert index.vector_key == "openai:fake-embed:48"
            assert search(index, "reconcile_ledger_balances", mode="keyword")[0].path == "src/ledger.py"
            monkeypatch.setattr(sync_mod, "_rows", built)
            assert sync_workspace(index).pending == 0 and verify(index).ok
        finally:
            close_index(index)
