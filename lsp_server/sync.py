"""Keep a folder's index equal to its files, doing as little work as possible.

The file table (state.py) of (path, size, mtime, content hash) decides what changed; files
whose size and mtime are unchanged are not even read. A changed file's chunks are replaced
(delete, then insert, keyed by path) and its file row is written last, so a crash at any point leaves
work the next run redoes without duplicates. Chunks go in keyword-searchable first; vectors
are filled in afterwards, from the embedding cache when the text was seen before. During a
full sync an encoder thread fills them in while later files are still read (``_Feed``), and
``embed_pending`` takes whatever it left.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from . import chunking, redaction, scanning, signatures, symbols, tokens
from .errors import EmbeddingError, StoreError
from .languages import sniff_language
from .store import Deletion, Store

if TYPE_CHECKING:
    from .index import WorkspaceIndex

log = logging.getLogger(__name__)

FILE_BATCH = 64
EMBED_BATCH = 64
# Pending ids listed per scan of the collection.
PENDING_PAGE = 4096
# Chunks queued for the encoder during the files phase at most; more wait in the store as
# pending, for embed_pending. A page's worth: as well sorted, and bounded in memory.
FEED_LIMIT = PENDING_PAGE
# Rows fetched by primary key per query while a page is read.
FETCH_BATCH = 512
# Average line length above which a file is taken for minified or generated code.
MINIFIED_LINE_CHARS = 1000

Progress = Callable[[int, int, str], None]  # done, total, message
Cancelled = Callable[[], bool]


@attrs.define
class SyncStats:
    files: int = 0
    chunks: int = 0
    changed_files: int = 0
    deleted_files: int = 0
    embedded: int = 0  # chunks the model embedded this run (cache misses)
    cached: int = 0  # chunks whose vectors came from the cache
    pending: int = 0  # chunks still without a vector
    skipped: dict[str, str] = attrs.Factory(dict)
    # Files read this run whose secrets were redacted: path -> (secrets, what and where).
    redacted: dict[str, tuple[int, str]] = attrs.Factory(dict)
    seconds: float = 0.0
    error: str | None = None
    # The embedding model failed: chunks wait without vectors, found by keyword search only.
    vectors_failed: bool = False
    cancelled: bool = False


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def chunk_id(path: str, content: str, occurrence: int) -> str:
    """Stable across runs and line moves: the same text in the same file keeps its id."""
    digest = hashlib.blake2b(f"{path}\0{occurrence}\0{content}".encode("utf-8", "surrogatepass"),
                             digest_size=16)
    return digest.hexdigest()


def embed_text(chunk: dict[str, Any] | chunking.Chunk) -> str:
    """What the model reads: a short header naming the file and symbol, then the code."""
    get = chunk.get if isinstance(chunk, dict) else lambda k: getattr(chunk, k)
    symbol = get("symbol") or ""
    header = f"{get('path')}" + (f" {symbol}" if symbol else "")
    return f"{header}\n{get('content')}"


def search_text(chunk: chunking.Chunk, signature_texts: Sequence[str] = ()) -> str:
    """What BM25 reads: path, symbol and code with identifiers split into words, then the
    chunk's signatures twice and its path again. Those fields weigh names and paths above
    bodies (issue 16: keyword mode's MRR@10 on doc queries 0.328 -> 0.382 on the stdlib
    corpus and 0.165 -> 0.184 on rxjs, identifiers 0.751 -> 0.861 and 0.756 -> 0.876)."""
    signature = " ".join(signature_texts)
    return tokens.expand_identifiers(f"{chunk.path} {chunk.symbol or ''}\n{chunk.content}\n"
                                     f"{signature}\n{signature}\n{chunk.path}")


@attrs.frozen
class _Parsed:
    path: str
    size: int
    mtime_ns: int
    hash: str
    chunks: list[chunking.Chunk]
    symbols: list[symbols.Symbol]
    signatures: list[list[str]]  # each chunk's signature texts (signatures.py), from the redacted text
    redactions: int = 0
    redacted: str = ""  # what was redacted and where, for the user: never the secret


def read_and_chunk(index: WorkspaceIndex, rel: str, language: str) -> tuple[_Parsed | None, str | None]:
    """Chunks and symbols of one file, or the reason it was skipped."""
    path = index.root / rel
    try:
        st = path.stat()
        with open(path, "rb") as fh:
            data = fh.read(index.settings.index.max_file_size_kb * 1024 + 1)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if len(data) > index.settings.index.max_file_size_kb * 1024:
        return None, f"larger than {index.settings.index.max_file_size_kb} KiB"
    if scanning.is_binary(data):
        return None, "binary"
    text = data.decode("utf-8", errors="replace")
    lines = text.count("\n") + 1
    if len(text) / lines > MINIFIED_LINE_CHARS:
        return None, "minified (very long lines)"
    # Secrets go before anything is chunked: chunks, BM25 text and embedded text are made from
    # the redacted text, whose lines are those of the file. The tree is parsed from the file
    # itself: the chunker takes only line numbers from it, and symbols are names and ranges.
    found = redaction.redact(text, rel) if index.settings.index.redact_secrets else redaction.Redacted(text)
    text = found.text
    tree = None
    file_symbols: list[symbols.Symbol] = []
    try:
        tree = chunking.parse(language, data)
    except Exception as exc:  # a timeout or grammar bug costs the syntax tree, not the file
        log.warning("%s: %s; split by lines instead", rel, exc)
    chunks = chunking.chunk(rel, text, language, tree, index.chunk_sizes)
    if tree is not None:
        file_symbols = symbols.extract(tree, data, language)
    return _Parsed(rel, st.st_size, st.st_mtime_ns, content_hash(data), chunks, file_symbols,
                   signatures.by_chunk(chunks, file_symbols),
                   found.count, found.reason()), None


def _rows(index: WorkspaceIndex, parsed: list[_Parsed], embed_now: bool, stats: SyncStats) -> list[dict[str, Any]]:
    store = index.store
    key = index.vector_key
    chunks = [c for p in parsed for c in p.chunks]
    texts = [embed_text(c) for c in chunks]
    vectors: list[np.ndarray | None] | np.ndarray = []
    if key is None:  # a provisional collection: chunks and keywords now, vectors once the model answers
        vectors = [None] * len(texts)
    elif embed_now and texts:
        try:
            vectors = _vectors(index, key, texts, stats)
        except EmbeddingError as exc:  # stored without vectors: pending for the next sync
            stats.error = index.state.last_error = str(exc)
    if key is not None and len(vectors) != len(texts):
        vectors = index.cache.get_many(key, texts)
        stats.cached += sum(v is not None for v in vectors)
    rows: list[dict[str, Any]] = []
    for p in parsed:
        seen: dict[str, int] = {}
        for c, signature_texts in zip(p.chunks, p.signatures):
            occurrence = seen.get(c.content, 0)
            seen[c.content] = occurrence + 1
            i = len(rows)
            rows.append(store.row(id=chunk_id(p.path, c.content, occurrence), path=p.path, language=c.language,
                                  start_line=c.start_line, end_line=c.end_line, symbol=c.symbol or "",
                                  kind=c.kind or 0, content=c.content, search_text=search_text(c, signature_texts),
                                  vector=vectors[i]))
    return rows


def _signature_texts(parsed: list[_Parsed]) -> list[str]:
    """The files' signature texts, each once: what a sync embeds ahead of the searches."""
    return list(dict.fromkeys(t for p in parsed for texts in p.signatures for t in texts))


def write_files(index: WorkspaceIndex, parsed: list[_Parsed], embed_now: bool,
                stats: SyncStats) -> list[dict[str, Any]]:
    """Replace these files' chunks and symbols. The snapshot row is written last. Returns the
    rows stored without a vector."""
    if not parsed:
        return []
    rows = _rows(index, parsed, embed_now, stats)
    paths = [p.path for p in parsed]
    new_ids: dict[str, list[str]] = {p: [] for p in paths}
    for r in rows:
        new_ids[r["path"]].append(r["id"])
    with index.write_lock:
        if rows and len(rows[0]["dense"]) != index.store.dimension:
            # The provisional collection was replaced meanwhile: rows for the model's own.
            rows = _rows(index, parsed, False, SyncStats())
        # Only files the snapshot has a row for can have chunks in the store (a pending row goes
        # in before any insert; a store that lost rows or was reset clears the rows), and the
        # row names their ids: a new file skips the delete, a known one deletes by primary key.
        # Deleting by path costs a scan of the collection in Milvus Lite (150 ms at 20,000).
        old = index.files.ids_of(paths)
        # Until the insert is done the store may hold old and new chunks; unknown stays unknown.
        index.files.mark_pending(paths, {p: None if (known := old.get(p, [])) is None else
                                            sorted({*known, *new_ids[p]}) for p in paths})
        index.store.replace(_deletion(old), rows)
        for p in parsed:
            index.symbols.replace_file(p.path, p.symbols)
        index.files.mark_done([(p.path, p.size, p.mtime_ns, p.hash, len(p.chunks)) for p in parsed], new_ids,
                                 {p.path: (p.redactions, p.redacted) for p in parsed})
    for p in parsed:
        if p.redactions:
            stats.redacted[p.path] = (p.redactions, p.redacted)
            log.info("redacted %d secrets in %s: %s", p.redactions, p.path, p.redacted)
    stats.chunks += len(rows)
    waiting = [r for r in rows if not r["embedded"]]
    index.state.pending_chunks += len(waiting)
    return waiting


def remove_files(index: WorkspaceIndex, paths: list[str]) -> None:
    if not paths:
        return
    with index.write_lock:
        old = index.files.ids_of(paths)
        index.files.mark_pending(paths)
        index.store.delete(_deletion({p: old.get(p) for p in paths}))
        for p in paths:
            index.symbols.remove_file(p)
        index.files.remove(paths)


def _deletion(ids: dict[str, list[str] | None]) -> Deletion:
    """What to delete for these files: their known ids, or by path where the ids are unknown."""
    return Deletion(paths=[p for p, v in ids.items() if v is None],
                    ids=[i for v in ids.values() if v for i in v])


def sync_workspace(index: WorkspaceIndex, progress: Progress | None = None, cancelled: Cancelled | None = None,
                   force: bool = False) -> SyncStats:
    """Bring the whole folder's index up to date: scan, diff, re-chunk what changed, embed."""
    started = time.perf_counter()
    stats = SyncStats()
    progress = progress or (lambda done, total, message: None)
    cancelled = cancelled or (lambda: False)
    feed: _Feed | None = None
    index.state.state = "indexing"
    index.state.last_error = None
    try:
        index.reopen_if_deleted()
        report = scanning.scan(index.root, index.settings.index)
        stats.files = len(report.files)
        stats.skipped.update(report.skipped)
        index.state.files = stats.files
        index.writable_store()  # opened (and bound to the file table) before the table is read
        # A provisional collection takes no vectors: embed_pending adopts its rows afterwards.
        feed = _Feed(index, stats, cancelled) if index.vector_key is not None else None
        known = index.files.all()
        present = {f.path for f in report.files}
        deleted = [p for p in known if p not in present]
        remove_files(index, deleted)
        stats.deleted_files = len(deleted)

        # Stored symbols came from another extractor version and were dropped: read every file.
        rebuild = index.symbols.needs_rebuild
        force = force or rebuild
        todo = [f for f in report.files if force or _maybe_changed(known.get(f.path), f)]
        done = stats.files - len(todo)
        index.state.indexed_files = done
        progress(done, stats.files, "scanning")
        if feed is not None and todo:
            feed.start()
        for start in range(0, len(todo), FILE_BATCH):
            if cancelled():
                stats.cancelled = True
                break
            batch = todo[start:start + FILE_BATCH]
            parsed: list[_Parsed] = []
            unchanged: list[tuple[str, int, int, str, int]] = []
            for f in batch:
                result, reason = read_and_chunk(index, f.path, f.language)
                if result is None:
                    stats.skipped[f.path] = reason or "skipped"
                    log.info("skipped %s: %s", f.path, reason)
                    continue
                old = known.get(f.path)
                if not force and old and old[2] == result.hash and old[3] == "done":
                    unchanged.append((f.path, result.size, result.mtime_ns, result.hash, len(result.chunks)))
                else:
                    parsed.append(result)
            if unchanged:
                index.files.mark_done(unchanged)
            # Files that became unreadable or binary leave the index.
            gone = [f.path for f in batch if f.path in stats.skipped and f.path in known]
            remove_files(index, gone)
            waiting = write_files(index, parsed, embed_now=False, stats=stats)
            if feed is not None:
                feed.put(waiting, _signature_texts(parsed))
            stats.changed_files += len(parsed)
            done += len(batch)
            index.state.indexed_files = done
            progress(done, stats.files, f"{done}/{stats.files} files")
        if stats.changed_files or stats.deleted_files:
            index.store.flush()
        if rebuild and not stats.cancelled:
            index.symbols.needs_rebuild = False
        if feed is not None:
            feed.finish(progress)  # raises what stopped it
        if not stats.cancelled and not stats.vectors_failed:
            # Chunks left pending by an earlier run, a failure or a cancelled feed.
            embed_pending(index, stats, progress, cancelled)
    except (StoreError, EmbeddingError, OSError) as exc:
        stats.error = str(exc)
    finally:
        if feed is not None:  # when the files phase failed: stop the encoder, its chunks stay pending
            feed.finish(None, stop=True)
        stats.seconds = time.perf_counter() - started
        index.state.skipped = stats.skipped
        index.state.last_error = stats.error
        index.state.state = "error" if stats.error and not stats.cancelled else "idle"
        try:
            stats.pending = index.state.pending_chunks = index.store.count_pending()
        except (StoreError, EmbeddingError):
            pass
    return stats


def _maybe_changed(old: tuple[int, int, str, str] | None, f: scanning.FileInfo) -> bool:
    return old is None or old[3] != "done" or old[0] != f.size or old[1] != f.mtime_ns


def _embed_step(index: WorkspaceIndex) -> int:
    """Texts per encode call. A remote provider gets enough to keep all its concurrent requests busy."""
    emb = index.settings.embedding
    return max(EMBED_BATCH, emb.batch_size * emb.concurrency) if emb.provider == "openai" else EMBED_BATCH


class _VectorWrites:
    """Encodes batches and writes their vectors on a thread while the next batch is encoded
    (one write in flight). Rows replaced by an edit meanwhile are not written, and remembered."""

    def __init__(self, index: WorkspaceIndex, store: Store, key: str, stats: SyncStats) -> None:
        self.index, self.store, self.key, self.stats = index, store, key, stats
        self.skipped: set[str] = set()  # replaced by an edit meanwhile: their successors are pending
        self._writer = ThreadPoolExecutor(1, "cc-vectors")
        self._writing: Future[int] | None = None

    def encode(self, rows: list[dict[str, Any]], texts: list[str]) -> None:
        """Raises EmbeddingError (nothing of this batch is written) or a write's StoreError."""
        vectors = _vectors(self.index, self.key, texts, self.stats)
        self.settle()
        self._writing = self._writer.submit(self._write, rows, vectors)

    def _write(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> int:
        with self.index.write_lock:
            count = self.store.set_vectors(rows, vectors)
        if count < len(rows):
            self.skipped.update(r["id"] for r in rows)
        return count

    def settle(self) -> None:
        """Wait for the write in flight."""
        writing, self._writing = self._writing, None
        if writing is not None:
            self.index.state.pending_chunks = max(0, self.index.state.pending_chunks - writing.result())

    def close(self) -> None:
        try:
            self.settle()
        finally:
            self._writer.shutdown(wait=True)


class _Feed:
    """Vectors for the chunks a full sync inserts, encoded on a thread while later files are
    still read, chunked and inserted, so that the model starts on the first files rather than
    after the last (issue 14). Its rows were inserted pending first: a crash or a failure leaves
    them to embed_pending, as before."""

    def __init__(self, index: WorkspaceIndex, stats: SyncStats, cancelled: Cancelled) -> None:
        self.index, self.cancelled = index, cancelled
        self.stats = SyncStats()  # its own counters, added to the sync's when it finishes
        self._sync_stats = stats
        self._queue: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cc-embed", daemon=True)
        self._progress: Progress | None = None  # set once every file is read: the total is known then
        self._fed = self._done = 0
        self._error: BaseException | None = None
        self._finished = False
        self._stop = threading.Event()
        self._signatures: dict[str, None] = {}

    def start(self) -> None:
        self._thread.start()

    def put(self, rows: list[dict[str, Any]], signature_texts: Sequence[str] = ()) -> None:
        """Queue rows for encoding, unless FEED_LIMIT rows wait already: those stay pending for
        embed_pending, so that a large folder's chunks are not all held here at once. The
        files' signature texts (signatures.py) are embedded into the cache after the chunks."""
        self._signatures.update(dict.fromkeys(signature_texts))
        if rows and self._fed - self._done < FEED_LIMIT:
            self._fed += len(rows)
            self._queue.put([{k: v for k, v in r.items() if k != "dense"} for r in rows])

    def finish(self, progress: Progress | None, stop: bool = False) -> None:
        """No more rows: encode what is queued (unless cancelled), then add up, and raise the
        StoreError that stopped the encoder. With ``stop`` (the sync failed or was interrupted)
        it stops after the batch in hand and raises nothing. Once only; then it does nothing."""
        if self._finished:
            return
        self._finished = True
        self._progress = progress
        if stop:
            self._stop.set()
        self._queue.put(None)
        if self._thread.ident is not None:
            self._thread.join()
        stats, own = self._sync_stats, self.stats
        stats.embedded += own.embedded
        stats.cached += own.cached
        if own.vectors_failed:
            stats.error, stats.vectors_failed = own.error, True
        if self._error is not None and not stop:
            raise self._error

    def _run(self) -> None:
        index, store = self.index, self.index.store
        key = index.vector_key
        assert key is not None
        writes = _VectorWrites(index, store, key, self.stats)
        step = _embed_step(index)
        # The shortest texts waiting are encoded first: batches of like length pad little (the
        # model ran 1.34x faster on the server's own texts sorted so, docs/BENCHMARKS.md), and
        # the files phase outruns the model, so the heap soon holds up to FEED_LIMIT of them.
        heap: list[tuple[int, int, str, dict[str, Any]]] = []
        order = itertools.count()
        more = True
        try:
            while (more or heap) and not self.cancelled() and not self._stop.is_set():
                # A full batch while files are still read; whatever is left after the last one.
                while more and (len(heap) < step or not self._queue.empty()):
                    rows = self._queue.get()
                    if rows is None:
                        more = False
                        break
                    for r in rows:
                        text = embed_text(r)
                        heapq.heappush(heap, (len(text), next(order), text, r))
                batch = [heapq.heappop(heap) for _ in range(min(step, len(heap)))]
                if not batch:
                    continue
                writes.encode([b[3] for b in batch], [b[2] for b in batch])
                self._done += len(batch)
                if self._progress is not None:
                    self._progress(self._done, self._fed, f"embedding {self._done}/{self._fed} chunks")
            texts = list(self._signatures)
            for start in range(0, len(texts), step):
                if self.cancelled() or self._stop.is_set():
                    break
                signatures.vectors(index.cache, index.embedder, key, texts[start:start + step])
        except EmbeddingError as exc:
            self.stats.error = index.state.last_error = str(exc)
            self.stats.vectors_failed = True
            log.warning("embedding failed; %d chunks stay pending: %s", self._fed - self._done, exc)
        except BaseException as exc:  # a store error: the sync reports it, the chunks stay pending
            self._error = exc
        finally:
            try:
                writes.close()
            except BaseException as exc:
                self._error = self._error or exc


def embed_pending(index: WorkspaceIndex, stats: SyncStats, progress: Progress | None = None,
                  cancelled: Cancelled | None = None) -> None:
    """Compute vectors for chunks inserted without one. Failures leave them pending.

    Pending ids are listed a page at a time (each listing scans the collection), then
    fetched, embedded and written back by primary key, a batch at a time."""
    cancelled = cancelled or (lambda: False)
    try:
        store, key = index.vector_store()
    except EmbeddingError as exc:  # the model cannot say its dimension: the chunks wait, keyword-searchable
        stats.error = index.state.last_error = str(exc)
        stats.vectors_failed = True
        return
    total = store.count_pending()
    step = _embed_step(index)
    done = 0
    writes = _VectorWrites(index, store, key, stats)
    try:
        while not cancelled() and total:
            skipped = writes.skipped
            ids = [i for i in store.pending_ids(PENDING_PAGE + len(skipped)) if i not in skipped]
            if not ids:
                break
            rows = [r for start in range(0, len(ids), FETCH_BATCH) for r in store.rows(ids[start:start + FETCH_BATCH])]
            skipped.update(set(ids) - {r["id"] for r in rows})
            # Batches of texts of like length pad little: the model ran 1.34x faster on the
            # server's own texts sorted so than on pages in store order (docs/BENCHMARKS.md).
            texts = {r["id"]: embed_text(r) for r in rows}
            rows.sort(key=lambda r: len(texts[r["id"]]))
            for start in range(0, len(rows), step):
                if cancelled():
                    break
                batch = rows[start:start + step]
                try:
                    writes.encode(batch, [texts[r["id"]] for r in batch])
                except EmbeddingError as exc:
                    stats.error = index.state.last_error = str(exc)
                    stats.vectors_failed = True
                    log.warning("embedding failed; %d chunks stay pending: %s", total - done, exc)
                    return
                done += len(batch)
                if progress:
                    progress(done, max(total, done), f"embedding {done}/{max(total, done)} chunks")
            writes.settle()  # the next page's listing must not find this page's last batch
    finally:
        try:
            writes.close()
        finally:
            store.flush()


def _vectors(index: WorkspaceIndex, key: str, texts: list[str], stats: SyncStats) -> np.ndarray:
    """Vectors for texts: from the cache where it has them, the rest from the embedder."""
    cached = index.cache.get_many(key, texts)
    missing = [i for i, v in enumerate(cached) if v is None]
    if missing:
        fresh = index.embedder.embed_documents([texts[i] for i in missing])
        index.cache.put_many(key, [texts[i] for i in missing], fresh)
        for i, v in zip(missing, fresh):
            cached[i] = v
    stats.embedded += len(missing)
    stats.cached += len(texts) - len(missing)
    return np.stack([v for v in cached if v is not None])  # every one is filled by now


def sync_paths(index: WorkspaceIndex, rel_paths: list[str], embed_now: bool = True) -> SyncStats:
    """Re-index a few files named by the editor or a watcher; deleted ones leave the index."""
    index.writable_store()
    stats = SyncStats()
    started = time.perf_counter()
    parsed: list[_Parsed] = []
    removed: list[str] = []
    for rel in rel_paths:
        reason = scanning.should_index(index.root, rel, index.settings.index)
        if reason is not None:
            if index.files.get(rel) is not None:
                removed.append(rel)
            elif not (index.root / rel).exists():
                continue
            stats.skipped[rel] = reason
            continue
        result, reason = read_and_chunk(index, rel, sniff_language(index.root / rel) or "text")
        if result is None:
            stats.skipped[rel] = reason or "skipped"
            if index.files.get(rel) is not None:
                removed.append(rel)
            continue
        old = index.files.get(rel)
        if old and old[2] == result.hash and old[3] == "done":
            index.files.mark_done([(rel, result.size, result.mtime_ns, result.hash, len(result.chunks))])
            continue
        parsed.append(result)
    added = len([p for p in parsed if index.files.get(p.path) is None])
    remove_files(index, removed)
    write_files(index, parsed, embed_now=embed_now, stats=stats)
    if embed_now and index.vector_key is not None and not stats.error:
        signatures.vectors(index.cache, index.embedder, index.vector_key, _signature_texts(parsed))
    if index.state.files:  # files selected for indexing, as status reports them
        index.state.files += added - len(removed)
    stats.changed_files = len(parsed)
    stats.deleted_files = len(removed)
    stats.seconds = time.perf_counter() - started
    return stats
