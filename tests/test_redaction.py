"""Secrets inside ordinary files (issue 17): found, replaced before anything is stored or
embedded, counted, and the code around them still found.

The engine indexes a workspace holding one file per secret kind into a real Milvus Lite store,
embedding through the real OpenAI provider against a real HTTP server on 127.0.0.1 that
records every request body.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_server import redaction
from lsp_server.embedding import HashEmbedder
from lsp_server.index import WorkspaceIndex
from lsp_server.search import search
from lsp_server.settings import EmbeddingSettings, IndexSettings, Settings
from lsp_server.sync import sync_paths, sync_workspace
from lsp_server.verify import verify

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer  # noqa: E402
from secret_fixtures import BENIGN, Case, cases  # noqa: E402

CASES = cases()
IDS = [c.name for c in CASES]


def all_bytes_under(path: Path) -> bytes:
    return b"\0".join(p.read_bytes() for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- the detector on its own -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_kind_is_replaced_and_lines_keep_their_numbers(case: Case) -> None:
    found = redaction.redact(case.text, case.path)
    for secret in case.secrets:
        assert secret in case.text  # the fixture holds it, so its absence below means something
        assert secret not in found.text
    assert tuple(f.kind for f in found.findings) == case.kinds
    assert found.text.count("\n") == case.text.count("\n")
    # Every line without a secret is unchanged, at the same number.
    before, after = case.text.split("\n"), found.text.split("\n")
    touched = {n for f in found.findings for n in range(f.first_line, f.last_line + 1)}
    assert [a for i, a in enumerate(after, 1) if i not in touched] == [
        b for i, b in enumerate(before, 1) if i not in touched]
    assert redaction.placeholder(case.kinds[0]) in found.text
    # The reason names kinds and lines, never a value.
    assert all(secret not in found.reason() for secret in case.secrets)
    assert f"line {found.findings[0].first_line}" in found.reason() or "lines " in found.reason()


def test_placeholders_and_lookalikes_are_left_alone() -> None:
    found = redaction.redact(BENIGN, "settings.py")
    assert found.findings == () and found.text == BENIGN


def test_redacting_twice_changes_nothing_more() -> None:
    for case in CASES:
        once = redaction.redact(case.text, case.path)
        assert redaction.redact(once.text, case.path).findings == (), case.name


def test_a_secret_found_once_goes_wherever_it_recurs() -> None:
    case = next(c for c in CASES if c.name == "github_classic")
    text = case.text + f"\n# the same value again, in a comment: {case.secrets[0]}\n"
    found = redaction.redact(text, case.path)
    assert case.secrets[0] not in found.text and found.count == 2


def test_redact_lines_finds_a_key_body_by_its_header_and_keeps_the_line_count() -> None:
    case = next(c for c in CASES if c.name == "rsa_key")
    lines = case.text.splitlines(keepends=True)
    out = redaction.redact_lines(lines, case.path)
    assert len(out) == len(lines)
    assert not any(secret in line for secret in case.secrets for line in out)
    body = [i for i, line in enumerate(lines) if case.secrets[1] in line][0]
    assert out[body].strip() == ""  # a body line without its header is still blanked


# -- the index: store, BM25 text, provider, search, status ----------------------------------------


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkspaceIndex, FakeOpenAIServer, Path]]:
    """One workspace with every case, indexed once through the OpenAI provider on the fake server."""
    tmp = tmp_path_factory.mktemp("secrets")
    root = tmp / "ws"
    for case in CASES:
        (root / case.path).parent.mkdir(parents=True, exist_ok=True)
        (root / case.path).write_text(case.text)
    (root / "settings.py").write_text(BENIGN)
    old = os.environ.get("CODE_CONTEXT_CACHE_DIR")
    os.environ["CODE_CONTEXT_CACHE_DIR"] = str(tmp / "cache")
    with FakeOpenAIServer(dimension=32, semantic=True) as fake:
        settings = Settings(embedding=EmbeddingSettings(provider="openai", base_url=fake.base_url, model="fake",
                                                        dimensions=32, max_retries=0))
        index = WorkspaceIndex(root, settings)
        try:
            stats = sync_workspace(index)
            assert stats.error is None and stats.pending == 0, stats
            assert set(stats.redacted) == {c.path for c in CASES}
            yield index, fake, tmp / "cache"
        finally:
            index.close()
            if old is None:
                os.environ.pop("CODE_CONTEXT_CACHE_DIR", None)
            else:
                os.environ["CODE_CONTEXT_CACHE_DIR"] = old


def _stored(index: WorkspaceIndex) -> list[dict]:
    return list(index.store.iter_rows(["id", "path", "content", "search_text"]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_secret_is_in_no_chunk_no_bm25_text_and_no_request(indexed, case: Case) -> None:
    index, fake, cache = indexed
    rows = _stored(index)
    assert any(r["path"] == case.path for r in rows)
    assert fake.requests, "nothing was embedded through the provider"
    sent = json.dumps([r.body for r in fake.requests]) + "\0".join(t for r in fake.requests for t in r.inputs)
    assert case.function in sent  # the file's code went to the provider, without its secret
    on_disk = all_bytes_under(cache)
    for secret in case.secrets:
        for r in rows:
            assert secret not in r["content"], r["path"]
            # BM25 text splits identifiers into lower-case words: look for any 12-character piece.
            text = r["search_text"].lower()
            assert not any(secret[i:i + 12].lower() in text for i in range(0, len(secret) - 11, 6)), r["path"]
        assert secret not in sent and json.dumps(secret)[1:-1] not in sent
        assert secret.encode() not in on_disk  # store, embedding cache, snapshot


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_code_around_the_secret_is_still_found(indexed, case: Case) -> None:
    index, _fake, _cache = indexed
    hits = search(index, case.function, limit=3, mode="keyword")
    assert hits and hits[0].path == case.path, [h.path for h in hits]
    assert case.function in hits[0].content
    assert redaction.placeholder(case.kinds[0]) in hits[0].content
    semantic = search(index, f"{case.function} {case.name.replace('_', ' ')}", limit=5, mode="semantic")
    assert case.path in [h.path for h in semantic]


def test_status_counts_redactions_per_file_and_verify_agrees(indexed) -> None:
    index, _fake, _cache = indexed
    info = index.status()
    assert info.redactions == sum(len(c.kinds) for c in CASES)
    assert info.redacted_files == len(CASES)
    per_file = index.files.redactions()
    for case in CASES:
        count, reason = per_file[case.path]
        assert count == len(case.kinds) and all(kind in reason for kind in case.kinds)
        assert not any(secret in reason for secret in case.secrets)
    assert "settings.py" not in per_file
    # verify recomputes the chunks from the files, with the same redaction.
    diff = verify(index)
    assert diff.ok and diff.files == len(CASES) + 1, diff


def test_an_edit_that_removes_the_secret_clears_its_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    case = next(c for c in CASES if c.name == "slack")
    (tmp_path / "ws").mkdir()
    path = tmp_path / "ws" / "notify.py"
    path.write_text(case.text)
    index = WorkspaceIndex(tmp_path / "ws", Settings(), embedder=HashEmbedder(64))
    try:
        sync_workspace(index)
        assert index.status().redactions == 1
        path.write_text(case.text.replace(case.secrets[0], "read_from_vault()"))
        stats = sync_paths(index, ["notify.py"])
        assert stats.redacted == {}
        assert index.status().redactions == 0 and index.files.redactions() == {}
    finally:
        index.close()


def test_turned_off_the_secret_is_stored_and_turning_it_on_reindexes(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The setting works both ways, and the checks above would see a secret that got through."""
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    case = next(c for c in CASES if c.name == "aws")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "aws.py").write_text(case.text)

    def contents(redact: bool) -> tuple[str, dict]:
        index = WorkspaceIndex(root, Settings(index=IndexSettings(redact_secrets=redact)), embedder=HashEmbedder(64))
        try:
            sync_workspace(index)
            assert verify(index).ok
            return "\n".join(r["content"] + r["search_text"] for r in _stored(index)), index.status()
        finally:
            index.close()

    text, info = contents(redact=False)
    assert all(secret in text for secret in case.secrets) and info.redactions == 0
    # Nothing in the file changed, yet the chunks are rebuilt without the secrets.
    text, info = contents(redact=True)
    assert not any(secret in text for secret in case.secrets) and info.redactions == 2
