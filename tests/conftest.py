"""Fixtures shared by the test modules: a private copy of the fixture workspace and a
private index cache, so no test touches the user's cache or another test's files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE_WORKSPACE = Path(__file__).parent / "fixtures" / "workspace"


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CODE_CONTEXT_CACHE_DIR for this test (inherited by servers it starts)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(path))
    return path


@pytest.fixture
def workspace(tmp_path: Path, cache_dir: Path) -> Path:
    """A copy of tests/fixtures/workspace the test may edit."""
    root = tmp_path / "workspace"
    shutil.copytree(FIXTURE_WORKSPACE, root)
    return root
