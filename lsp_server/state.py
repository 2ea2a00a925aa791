"""state.db: what a folder's index knows besides its vectors, and the one policy for opening it.

Three tables share the file: the file table (what the index holds per file, and which model
and store it is bound to), the embedding cache (vectors by hash of model and text) and the
symbol index. They are opened together by ``open_state``, which also owns what happens to a
damaged file: it is deleted and started over, and the index is rebuilt from the files.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
import numpy as np

from .symbol_index import SymbolIndex


def connect(path: Path) -> sqlite3.Connection:
    """A connection any thread may use (callers serialise with their own lock); WAL, so
    readers never wait for the writer, and NORMAL sync: a crash may lose the last commits,
    which the next sync redoes, but never corrupts the file."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class FileTable:
    """What the index holds per file. A row in state 'pending' has chunks that may be stale."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        self._lock = threading.Lock()
        with self._lock:
            # ids: the chunk ids the store may hold for the file, space-separated; NULL when
            # unknown (an index from before the column), which means deleting by path.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                " hash TEXT, state TEXT, chunks INTEGER, ids TEXT)")
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(files)")}
            if "ids" not in columns:
                self._db.execute("ALTER TABLE files ADD COLUMN ids TEXT")
            # Secrets redacted from the file's chunks, and which (kinds and lines, never values).
            if "redactions" not in columns:
                self._db.execute("ALTER TABLE files ADD COLUMN redactions INTEGER NOT NULL DEFAULT 0")
                self._db.execute("ALTER TABLE files ADD COLUMN redacted TEXT")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")

    def bind_model(self, key: str) -> bool:
        """File rows describe one collection; a new model starts them over (the cache stays).
        True when the rows were started over (or there were none bound yet)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='model'").fetchone()
            if row is None or row[0] != key:
                self._db.execute("BEGIN")
                self._db.execute("DELETE FROM files")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (key,))
                self._db.execute("COMMIT")
                return True
            return False

    def bound_model(self) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='model'").fetchone()
        return row[0] if row else None

    def rebind_model(self, key: str) -> None:
        """The rows now describe another collection holding the same chunks: keep them."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (key,))

    def all(self) -> dict[str, tuple[int, int, str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, hash, state FROM files").fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def get(self, path: str) -> tuple[int, int, str, str] | None:
        with self._lock:
            r = self._db.execute("SELECT size, mtime_ns, hash, state FROM files WHERE path=?", (path,)).fetchone()
        return (r[0], r[1], r[2], r[3]) if r else None

    def ids_of(self, paths: list[str]) -> dict[str, list[str] | None]:
        """For those of paths that have a row: the chunk ids the store may hold, None if unknown."""
        found: dict[str, list[str] | None] = {}
        with self._lock:
            for start in range(0, len(paths), 500):
                part = paths[start:start + 500]
                for path, ids in self._db.execute(
                        f"SELECT path, ids FROM files WHERE path IN ({','.join('?' * len(part))})", part):
                    found[path] = None if ids is None else ids.split()
        return found

    def chunk_total(self) -> int:
        """Chunks of the files whose rows are done: what the store holds for them."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(chunks), 0) FROM files WHERE state='done'").fetchone()[0])

    def redactions(self) -> dict[str, tuple[int, str]]:
        """Indexed files with redacted secrets: path -> (count, what and where)."""
        with self._lock:
            rows = self._db.execute("SELECT path, redactions, redacted FROM files "
                                    "WHERE state='done' AND redactions > 0 ORDER BY path").fetchall()
        return {r[0]: (int(r[1]), r[2] or "") for r in rows}

    def count(self, done_only: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM files" + (" WHERE state='done'" if done_only else "")
        with self._lock:
            return int(self._db.execute(sql).fetchone()[0])

    def mark_pending(self, paths: Iterable[str], ids: dict[str, list[str] | None] | None = None) -> None:
        """Before the store changes. `ids` must cover what the store may hold once the change is
        half done (old and new ids), so that a crash leaves nothing undeletable."""
        ids = ids or {}
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO files (path, state) VALUES (?, 'pending') "
                "ON CONFLICT(path) DO UPDATE SET state='pending'", [(p,) for p in paths])
            self._db.executemany("UPDATE files SET ids=? WHERE path=?",
                                 [(None if v is None else " ".join(v), p) for p, v in ids.items()])
            self._db.execute("COMMIT")

    def mark_done(self, rows: list[tuple[str, int, int, str, int]], ids: dict[str, list[str]] | None = None,
                  redactions: dict[str, tuple[int, str]] | None = None) -> None:
        """After the store changed; a file's ids, and what was redacted from it (count, what
        and where: never the secret), stay as they were unless given."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO files (path, size, mtime_ns, hash, state, chunks) VALUES (?, ?, ?, ?, 'done', ?) "
                "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                "hash=excluded.hash, state='done', chunks=excluded.chunks", rows)
            self._db.executemany("UPDATE files SET ids=? WHERE path=?",
                                 [(" ".join(v), p) for p, v in (ids or {}).items()])
            self._db.executemany("UPDATE files SET redactions=?, redacted=? WHERE path=?",
                                 [(n, reason or None, p) for p, (n, reason) in (redactions or {}).items()])
            self._db.execute("COMMIT")

    def remove(self, paths: Iterable[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM files WHERE path=?", [(p,) for p in paths])
            self._db.execute("COMMIT")

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM files")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class EmbeddingCache:
    """Vectors keyed by hash of (model, text), so unchanged text is never embedded twice,
    whatever its line numbers or branch."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        self._lock = threading.Lock()

    @staticmethod
    def key(model: str, text: str) -> bytes:
        return hashlib.sha256(f"{model}\0{text}".encode("utf-8", "surrogatepass")).digest()[:16]

    def get_many(self, model: str, texts: list[str]) -> list[np.ndarray | None]:
        keys = [self.key(model, t) for t in texts]
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                rows = self._db.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({','.join('?' * len(part))})", part
                ).fetchall()
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return [found.get(k) for k in keys]

    def put_many(self, model: str, texts: list[str], vectors: np.ndarray) -> None:
        rows = [(self.key(model, t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors)]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", rows)
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()


@attrs.define
class State:
    """The open tables of one state.db."""

    files: FileTable
    cache: EmbeddingCache
    symbols: SymbolIndex

    def close(self) -> None:
        self.files.close()
        self.cache.close()
        self.symbols.close()


def open_state(path: Path, on_damage: Callable[[str], None]) -> State:
    """Open state.db; a damaged one is deleted and started over (the store follows suit), and
    ``on_damage`` is told why. Locked, read-only or full files are not ours to delete."""
    opened: list[FileTable | EmbeddingCache | SymbolIndex] = []
    try:
        for part in (FileTable, EmbeddingCache, SymbolIndex):
            opened.append(part(path))
        return State(*opened)  # type: ignore[arg-type]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise
        for done in opened:
            done.close()
        on_damage(f"the index state {path} was damaged ({exc}); it is rebuilt from the files")
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    return State(FileTable(path), EmbeddingCache(path), SymbolIndex(path))
