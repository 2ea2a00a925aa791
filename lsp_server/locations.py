"""Where a folder's index lives: in the user's cache directory, never inside the workspace.

Light on purpose: a forwarding CLI finds the owner's socket here without the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    """Where indexes live: $CODE_CONTEXT_CACHE_DIR, else the platform's user cache directory."""
    override = os.environ.get("CODE_CONTEXT_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("code-context"))


def workspace_key(root: Path) -> str:
    return hashlib.sha256(str(root).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def index_dir_for(root: Path) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in root.name)[:40] or "root"
    return cache_root() / "workspaces" / f"{safe}-{workspace_key(root)}"


def private_dir(path: Path) -> Path:
    """Create the index directory for this user only: the socket inside inherits the guard."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path
