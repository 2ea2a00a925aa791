"""Chunks in Milvus: a dense vector and a BM25 sparse field per chunk.

Milvus Lite (a file in the user's cache directory) by default; the same code talks to a
Milvus server or Zilliz Cloud given a URI. One collection per (workspace, embedding model,
dimension), so vectors of two models never meet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException

from .chunk_index import ChunkIndex
from .errors import StoreError, StoreLocked
from .store_uri import display_uri, is_local, lock_holder

log = logging.getLogger(__name__)
# Milvus Lite serves gRPC in-process and lacks AllocTimestamp, which pymilvus probes when it
# creates a collection; the probe's failure is handled, but grpc logs it as an error.
logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
# It also lacks the MVCC timestamp a query iterator asks for first; the client's own clock is
# right for a store only this process writes, and the warning would come at every open.
logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)

# One client opens at a time. A store opening on a thread (Store._open_behind) while another
# opened the same Milvus Lite directory (a provisional collection's rows moving into the
# model's at a restart) failed tests/test_rejected_key.py[restart] in 2 runs of 2; serialised,
# it passed 3 of 3. The mechanism inside pymilvus was not pinned down.
_CONNECTING = threading.Lock()

MAX_PATH_BYTES = 2048
MAX_TEXT_BYTES = 60_000  # under Milvus' 65,535-byte VARCHAR limit
# Milvus Lite's AUTOINDEX is HNSW searched with ef 64 by default: its top 30 missed 2 % of
# the exact top 30 (docs/BENCHMARKS.md); 256 found them all at no measurable cost.
HNSW_EF = 256
OUTPUT_FIELDS = ["id", "path", "language", "start_line", "end_line", "symbol", "kind", "content"]
# What a ChunkIndex is built from when a local store opens.
MEMORY_FIELDS = ("id", "path", "language", "start_line", "end_line", "symbol", "kind", "content", "search_text",
                 "embedded", "dense")


@attrs.frozen
class Hit:
    id: str
    score: float
    path: str
    language: str
    start_line: int
    end_line: int
    symbol: str
    kind: int
    content: str


@attrs.frozen
class Deletion:
    """Chunks to delete: by primary key where the ids are known, by path where not."""

    paths: list[str] = attrs.Factory(list)
    ids: list[str] = attrs.Factory(list)


@attrs.frozen
class Where:
    """Which chunks a search may return: None keeps every language or path."""

    languages: frozenset[str] | None = None
    paths: frozenset[str] | None = None

    def expr(self) -> str:
        """The same condition as a Milvus filter."""
        clauses = []
        if self.languages is not None:
            clauses.append(f"language in {quote_list(sorted(self.languages))}")
        if self.paths is not None:
            clauses.append(f"path in {quote_list(sorted(self.paths))}")
        return " and ".join(clauses)


EVERYWHERE = Where()


def _clip(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def quote_list(values: Iterable[str]) -> str:
    """A Milvus filter list literal. Lite has no filter templates, so strings are escaped."""
    return json.dumps(list(values), ensure_ascii=False)


class Store:
    """One collection. A local store (Milvus Lite) is searched through a ChunkIndex held in
    memory beside it; a Milvus server searches its own indexes.

    A local store with a clean saved ChunkIndex answers searches as soon as that is loaded,
    and opens Milvus Lite on a thread: it reads every segment when it opens (4 s at 100,000
    chunks), and only writes need it. Anything that needs Milvus waits for it."""

    def __init__(self, uri: str, collection: str, dimension: int, token: str | None = None) -> None:
        self.uri = uri
        self.collection = collection
        self.dimension = dimension
        # Chunks not yet embedded carry this vector and embedded=false; dense search skips them.
        self._placeholder = np.zeros(dimension, dtype=np.float32)
        self._placeholder[0] = 1.0
        self._lock = threading.RLock()
        self._partial_update = True
        self.created = False  # this open created the collection: it holds nothing yet
        self.memory: ChunkIndex | None = None
        self._clean = False  # the saved ChunkIndex is the memory one
        self._milvus: MilvusClient | None = None
        self._opened = threading.Event()
        self._open_error: StoreError | None = None
        self.damaged: StoreError | None = None  # the open on a thread found the store unreadable
        local = is_local(uri)
        if local and self._on_disk(collection):
            saved = self._saved_memory()
            if saved is not None:
                self.memory, self._clean = saved, True
                threading.Thread(target=self._open_behind, args=(token,), name="cc-store-open", daemon=True).start()
                return
        try:
            # Without a clean save, one is still loaded while Milvus Lite opens: 4 s and 5 s at
            # 100,000 chunks one after the other; both wait on disk and numpy part of the time.
            with ThreadPoolExecutor(1, "cc-chunk-index") as pool:
                saved_later = pool.submit(self._saved_memory) if local else None
                self._connect(token, local)
                self.memory = self._load_memory(saved_later.result()) if saved_later is not None else None
        finally:
            self._opened.set()

    def _on_disk(self, collection: str) -> bool:
        """Whether a local store holds a collection, from Milvus Lite's directory layout."""
        return (Path(self.uri) / "collections" / collection).is_dir()

    def _connect(self, token: str | None, local: bool) -> None:
        try:
            with _CONNECTING:
                self._milvus = MilvusClient(uri=self.uri, token=token or "")
                self._ensure_collection(local)
        except Exception as exc:
            holder = lock_holder(self.uri)
            if holder is not None:
                raise StoreLocked(
                    f"the vector store at {display_uri(self.uri)} is in use by another process{holder}, probably "
                    "another editor window or a `code-context` command on this folder. Milvus Lite lets one process "
                    "open a store at a time: semantic search here waits until that process exits, or set "
                    "codeContext.store.uri to a Milvus server to share one index") from exc
            detail = exc.message if isinstance(exc, MilvusException) else exc
            raise StoreError(f"cannot open the vector store at {display_uri(self.uri)}: {detail}") from exc

    def _open_behind(self, token: str | None) -> None:
        """Open Milvus Lite after a clean save answered, and check the save against it."""
        try:
            self._connect(token, local=True)
            with self._lock:
                assert self.memory is not None
                if self.created:  # the collection went away under a clean save: nothing to keep
                    log.error("%s: the store held no collection for the saved chunk index; run "
                              "`code-context index --force` to index this folder again", self.collection)
                    self.memory.clear()
                    self._clean = False
                    return
                self.memory = self._load_memory(self.memory)  # the same count check as a synchronous open
        except StoreLocked as exc:
            log.warning("%s; until then, searches answer from the index as last saved", exc)
            self._open_error = exc
        except StoreError as exc:  # damaged: the folder's index opens it again, and rebuilds it
            log.warning("%s", exc)
            self._open_error = self.damaged = exc
            _dirty_mark(self._snapshot()).touch()  # the save no longer speaks for the store
        except Exception as exc:  # a bug: every later call says so rather than hanging
            log.exception("opening %s failed", display_uri(self.uri))
            self._open_error = StoreError(f"cannot open the vector store at {display_uri(self.uri)}: {exc}")
        finally:
            self._opened.set()

    def wait_open(self) -> None:
        """Until Milvus is open, or has failed to open."""
        self._opened.wait()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The write lock, once Milvus is open: _open_behind takes the lock after opening it."""
        self._opened.wait()
        with self._lock:
            yield

    @property
    def _client(self) -> MilvusClient:
        if self._milvus is None:
            self._opened.wait()
            if self._milvus is None:
                raise self._open_error or StoreError(f"the vector store at {display_uri(self.uri)} is not open")
        return self._milvus

    def _ensure_collection(self, local: bool) -> None:
        """Create the collection if it is missing, and load it.

        A local one is searched from the ChunkIndex, so Milvus Lite gets neither the BM25
        function nor vector indexes: it would tokenize every chunk a second time and build
        HNSW graphs and posting lists nothing reads (its background index builds used both
        cores for seconds after every large write). A local collection made before keeps its
        fields, and loses the indexes."""
        client = self._client
        if not client.has_collection(self.collection):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
            schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH_BYTES)
            schema.add_field("language", DataType.VARCHAR, max_length=32)
            schema.add_field("start_line", DataType.INT64)
            schema.add_field("end_line", DataType.INT64)
            schema.add_field("symbol", DataType.VARCHAR, max_length=1024)
            schema.add_field("kind", DataType.INT64)
            schema.add_field("content", DataType.VARCHAR, max_length=65_535)
            schema.add_field("search_text", DataType.VARCHAR, max_length=65_535, enable_analyzer=True)
            schema.add_field("embedded", DataType.BOOL)
            schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dimension)
            index = client.prepare_index_params()
            if not local:
                schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
                schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                             input_field_names=["search_text"], output_field_names=["sparse"]))
                index.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
                index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            index.add_index("path", index_type="INVERTED")
            client.create_collection(self.collection, schema=schema, index_params=index)
            self.created = True
        elif local and {"dense", "sparse"} & set(client.list_indexes(self.collection)):
            client.release_collection(self.collection)
            for field in ("dense", "sparse"):
                if field in client.list_indexes(self.collection):
                    client.drop_index(self.collection, field)
        client.load_collection(self.collection)

    def _snapshot(self, collection: str | None = None) -> Path:
        """Where a local collection's ChunkIndex is saved: beside the Milvus Lite files."""
        return Path(self.uri).parent / "chunk-index" / (collection or self.collection)

    def _saved_memory(self) -> ChunkIndex | None:
        """The saved ChunkIndex, if no write has happened since it was saved."""
        snapshot = self._snapshot()
        if not snapshot.is_dir() or _dirty_mark(snapshot).exists():
            return None
        try:
            return ChunkIndex.load(snapshot, self.dimension)
        except (OSError, ValueError, KeyError) as exc:
            log.info("%s: cannot load the saved chunk index (%s); reading the store", self.collection, exc)
            return None

    def _load_memory(self, saved: ChunkIndex | None) -> ChunkIndex:
        """The saved ChunkIndex when it holds as many chunks as Milvus; else one built from
        every row (24-40 s at 100,000 chunks, against 2-4 s to load a saved one)."""
        self._clean = False
        if self.created:
            return ChunkIndex(self.dimension)
        if saved is not None:
            stored = self.count()
            if len(saved) == stored:
                self._clean = True
                return saved
            log.info("%s: the saved chunk index holds %d chunks, the store %d; reading the store",
                     self.collection, len(saved), stored)
        return self._read_memory()

    def _read_memory(self) -> ChunkIndex:
        memory = ChunkIndex(self.dimension)
        # Pages of 16,384 rows: the iterator's default 1,000 took 125 s for 100,000 rows, this 24 s.
        memory.add(self.iter_rows([*MEMORY_FIELDS], batch=16_384))
        return memory

    def _touch(self) -> None:
        """Before a write: the saved ChunkIndex stops being the truth until checkpoint."""
        if self.memory is not None and self._clean:
            mark = _dirty_mark(self._snapshot())
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
            self._clean = False

    def checkpoint(self) -> None:
        """Save the ChunkIndex if anything changed since it was last saved or loaded."""
        with self._lock:
            if self.memory is None or self._clean:
                return
            self.memory.fold()
            snapshot = self._snapshot()
            self.memory.save(snapshot)
            _dirty_mark(snapshot).unlink(missing_ok=True)
            self._clean = True

    # --- writes -------------------------------------------------------------------------
    def row(self, *, id: str, path: str, language: str, start_line: int, end_line: int, symbol: str,
            kind: int, content: str, search_text: str, vector: np.ndarray | None) -> dict[str, Any]:
        return {
            "id": id, "path": _clip(path, MAX_PATH_BYTES), "language": language[:32],
            "start_line": start_line, "end_line": end_line, "symbol": _clip(symbol, 1024), "kind": kind,
            "content": _clip(content, MAX_TEXT_BYTES), "search_text": _clip(search_text, MAX_TEXT_BYTES),
            "embedded": vector is not None,
            "dense": (self._placeholder if vector is None else np.asarray(vector, dtype=np.float32)).tolist(),
        }

    def replace(self, old: Deletion, rows: list[dict[str, Any]]) -> None:
        """Delete the old chunks of some files, then insert their new ones."""
        with self._writing():
            self._touch()
            self.delete(old)
            for start in range(0, len(rows), 500):
                self._call(self._client.insert, self.collection, rows[start:start + 500])
                if self.memory is not None:
                    self.memory.add(rows[start:start + 500])

    def delete(self, old: Deletion) -> None:
        """By primary key a delete is a lookup; by path Milvus Lite scans the collection."""
        with self._writing():
            self._touch()
            for start in range(0, len(old.ids), 1000):
                self._call(self._client.delete, self.collection, ids=old.ids[start:start + 1000])
            for start in range(0, len(old.paths), 200):
                part = old.paths[start:start + 200]
                self._call(self._client.delete, self.collection, filter=f"path in {quote_list(part)}")
            if self.memory is not None:
                self.memory.remove(old.ids, old.paths)

    def set_vectors(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> int:
        """Fill in vectors of rows still present; a row deleted meanwhile is not resurrected.

        A partial upsert sends only the vector: resending content would make Milvus tokenize
        it for BM25 again. Servers older than Milvus 2.6 lack it and get the whole row."""
        with self._writing():
            present = self.existing_ids([r["id"] for r in rows])
            kept = [(row, np.asarray(vector, np.float32).tolist()) for row, vector in zip(rows, vectors)
                    if row["id"] in present]
            if not kept:
                return 0
            self._touch()
            if self._partial_update:
                try:
                    self._call(self._client.upsert, self.collection, [
                        {"id": row["id"], "embedded": True, "dense": vector} for row, vector in kept],
                        partial_update=True)
                    self._remember_vectors(kept)
                    return len(kept)
                except StoreError as exc:
                    if not isinstance(exc.__cause__, MilvusException):
                        raise  # the store is down, not too old
                    log.info("partial upsert refused by %s, sending whole rows: %s", display_uri(self.uri), exc)
                    self._partial_update = False
            self._call(self._client.upsert, self.collection,
                       [{**row, "embedded": True, "dense": vector} for row, vector in kept])
            self._remember_vectors(kept)
            return len(kept)

    def _remember_vectors(self, kept: list[tuple[dict[str, Any], list[float]]]) -> None:
        if self.memory is not None:
            self.memory.set_vectors([row["id"] for row, _ in kept], np.asarray([v for _, v in kept], np.float32))

    def flush(self) -> None:
        """Seal growing segments: Milvus searches unsealed rows by brute force."""
        with self._writing():
            self._call(self._client.flush, self.collection)

    def drop(self) -> None:
        with self._writing():
            self._touch()
            self._call(self._client.drop_collection, self.collection)
            if self.memory is not None:
                self.memory.clear()
                shutil.rmtree(self._snapshot(), ignore_errors=True)
                _dirty_mark(self._snapshot()).unlink(missing_ok=True)
                self._clean = True  # nothing to save for a collection that is gone

    def drop_collection(self, name: str) -> None:
        """Drop another collection of the same store, if it exists."""
        if is_local(self.uri) and not self._on_disk(name):
            return  # without waiting for Milvus Lite to open
        with self._writing():
            if self._call(self._client.has_collection, name):
                self._call(self._client.drop_collection, name)
            if is_local(self.uri):
                shutil.rmtree(self._snapshot(name), ignore_errors=True)

    def recreate(self) -> None:
        """Drop every row by dropping the collection, and create it again empty."""
        with self._writing():
            self.drop()
            self._call(self._ensure_collection, is_local(self.uri))

    def close(self) -> None:
        try:
            self.checkpoint()
        except OSError as exc:  # the next open reads the store instead
            log.warning("cannot save the chunk index of %s: %s", self.collection, exc)
        self._opened.wait()
        try:
            if self._milvus is not None:
                self._milvus.close()
        except Exception:  # closing a dead connection must not mask the real error
            pass

    # --- reads --------------------------------------------------------------------------
    def existing_ids(self, ids: list[str]) -> set[str]:
        if self.memory is not None:
            return self.memory.existing(ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            rows = self._call(self._client.query, self.collection,
                              filter=f"id in {quote_list(ids[start:start + 500])}", output_fields=["id"])
            found.update(r["id"] for r in rows)
        return found

    def pending_ids(self, limit: int) -> list[str]:
        """Ids of rows whose vector has not been computed yet: one scan per page of work."""
        if self.memory is not None:
            return self.memory.pending(limit)
        rows = self._call(self._client.query, self.collection, filter="embedded == false", limit=limit,
                          output_fields=["id"])
        return [r["id"] for r in rows]

    def rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """Rows by primary key, with what is needed to embed them and to write them back."""
        return self._call(self._client.query, self.collection, filter=f"id in {quote_list(ids)}",
                          output_fields=[*OUTPUT_FIELDS, "search_text"])

    def count(self, expr: str = "") -> int:
        """Rows in Milvus (the store of record, never the ChunkIndex: it is checked against this)."""
        rows = self._call(self._client.query, self.collection, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def count_pending(self) -> int:
        if self.memory is not None:  # Milvus Lite scans every row for this: 100 ms and more at 100k
            return self.memory.pending_count()
        return self.count("embedded == false")

    def chunks_of(self, path: str) -> list[dict[str, Any]]:
        return self._call(self._client.query, self.collection, filter=f"path in {quote_list([path])}",
                          output_fields=OUTPUT_FIELDS, limit=16_384)

    def iter_rows(self, fields: list[str], batch: int = 1000) -> Iterable[dict[str, Any]]:
        """Every row, one pass over the collection (a filter per file would scan it per file)."""
        iterator = self._client.query_iterator(self.collection, batch_size=batch, filter="",
                                               output_fields=fields)
        try:
            while True:
                rows = iterator.next()
                if not rows:
                    break
                yield from rows
        finally:
            iterator.close()

    def iter_ids(self, batch: int = 1000) -> Iterable[tuple[str, str]]:
        """(id, path) of every row, for verification."""
        for r in self.iter_rows(["id", "path"], batch):
            yield r["id"], r["path"]

    def dense_search(self, vector: np.ndarray, limit: int, where: Where = EVERYWHERE) -> list[Hit]:
        """The closest chunks by cosine, best first. From memory, a hit's content is empty:
        with_content fills in the few that are shown."""
        if self.memory is not None:
            return self._memory_hits(self.memory.dense(vector, limit, where.languages, where.paths))
        expr = where.expr()
        expr = f"({expr}) and embedded == true" if expr else "embedded == true"
        result = self._call(self._client.search, self.collection, data=[np.asarray(vector, np.float32).tolist()],
                            anns_field="dense", limit=limit, filter=expr, output_fields=OUTPUT_FIELDS,
                            search_params={"metric_type": "COSINE", "params": {"ef": max(HNSW_EF, limit)}})
        return [self._hit(h, float(h["distance"])) for h in result[0]]

    def keyword_search(self, text: str, limit: int, where: Where = EVERYWHERE) -> list[Hit]:
        if not text.strip():
            return []
        if self.memory is not None:
            return self._memory_hits(self.memory.keyword(text, limit, where.languages, where.paths))
        # metric_type must be named: Milvus Lite rejects a BM25 search without it.
        result = self._call(self._client.search, self.collection, data=[text], anns_field="sparse",
                            limit=limit, filter=where.expr(), output_fields=OUTPUT_FIELDS,
                            search_params={"metric_type": "BM25"})
        # Milvus Lite reports BM25 relevance negated (best first, most negative).
        return [self._hit(h, abs(float(h["distance"]))) for h in result[0]]

    def _memory_hits(self, scored: list[tuple[str, float]]) -> list[Hit]:
        assert self.memory is not None
        hits = []
        for id, score in scored:
            meta = self.memory.describe(id)
            if meta is not None:
                hits.append(Hit(id, score, *meta, content=""))
        return hits

    def with_content(self, hits: list[Hit]) -> list[Hit]:
        """The hits with their text: from the ChunkIndex, else read from Milvus by primary key
        (2 ms for 10 rows at 100k chunks); a chunk deleted since it was found is left out."""
        missing = [h.id for h in hits if not h.content]
        if not missing:
            return hits
        if self.memory is not None:
            texts = {i: t for i in missing if (t := self.memory.text(i)) is not None}
            if len(texts) == len(missing):
                return [h if h.content else attrs.evolve(h, content=texts[h.id]) for h in hits]
        rows = self._call(self._client.query, self.collection, filter=f"id in {quote_list(missing)}",
                          output_fields=["id", "content"])
        content = {r["id"]: r["content"] for r in rows}
        return [h if h.content else attrs.evolve(h, content=content[h.id]) for h in hits
                if h.content or h.id in content]

    @staticmethod
    def _hit(h: dict[str, Any], score: float) -> Hit:
        e = h["entity"]
        return Hit(str(h["id"]), score, e["path"], e["language"], int(e["start_line"]), int(e["end_line"]),
                   e["symbol"], int(e["kind"]), e["content"])

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except MilvusException as exc:
                # A Milvus server that restarted holds the collection released: load it, once.
                if not _not_loaded(exc):
                    raise
                log.info("collection %s was released by the store; loading it again", self.collection)
                self._client.load_collection(self.collection)
                return fn(*args, **kwargs)
        except MilvusException as exc:
            raise StoreError(f"vector store error at {display_uri(self.uri)}: {exc.message}") from exc
        except Exception as exc:  # grpc and connection errors arrive as many types
            raise StoreError(f"vector store error at {display_uri(self.uri)}: {exc}") from exc


def _not_loaded(exc: MilvusException) -> bool:
    message = str(exc.message).lower()
    return "released" in message or "not loaded" in message or "call load()" in message


def _dirty_mark(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + ".dirty")
