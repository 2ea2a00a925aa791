"""Changes made outside the editor (git checkout, a build, another tool).

Clients that can watch files send workspace/didChangeWatchedFiles; for the others a
watchdog observer per folder is the fallback. Either way a change arrives as a path,
and a directory stands for every file in it: `rm -r src` or a moved folder is one event.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .scanning import SKIP_DIRS

if TYPE_CHECKING:
    from .index import WorkspaceIndex

# Opened/closed/attribute events and directory mtime changes say nothing about content.
_EVENTS = [FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent,
           DirCreatedEvent, DirDeletedEvent, DirMovedEvent]


def relative(root: Path, path: str) -> str | None:
    """Workspace-relative posix path of an event, or None for the root, outside paths and
    skipped directories (.git churns on every commit)."""
    try:
        rel = Path(path).relative_to(root).as_posix()
    except ValueError:
        return None
    if rel == "." or any(part in SKIP_DIRS for part in rel.split("/")):
        return None
    return rel


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, on_paths: Callable[[list[str]], None]) -> None:
        self.root = root
        self.on_paths = on_paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path, getattr(event, "dest_path", "")]
        rels = [r for p in paths if p and (r := relative(self.root, os.fsdecode(p))) is not None]
        if rels:
            self.on_paths(rels)


def watch(root: Path, on_paths: Callable[[list[str]], None]) -> BaseObserver:
    """Start watching root recursively; on_paths runs on the observer's thread."""
    observer = Observer()
    observer.schedule(_Handler(root, on_paths), str(root), recursive=True, event_filter=_EVENTS)
    observer.start()
    return observer


def expand(index: WorkspaceIndex, rel_paths: Iterable[str]) -> list[str]:
    """The files a batch of changed paths stands for, for ``sync_paths``.

    A directory that exists stands for the files under it; one that is gone, for the
    indexed files that were under it. Runs on a worker thread: it walks and reads state.
    """
    files: set[str] = set()
    known: list[str] | None = None
    for rel in rel_paths:
        path = index.root / rel
        if path.is_dir() and not path.is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
                base = Path(dirpath).relative_to(index.root).as_posix()
                files.update(f"{base}/{name}" for name in filenames)
        elif path.exists() or path.is_symlink():
            files.add(rel)
        else:
            if known is None:
                known = list(index.files.all())
            prefix = rel + "/"
            files.update(p for p in known if p.startswith(prefix))
            files.add(rel)
    return sorted(files)
