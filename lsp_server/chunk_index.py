"""A folder's chunks in memory for retrieval: unit vectors for dense search, an inverted
index for BM25, and what a ranked hit shows of its chunk, text included.

Milvus stays the store of record. store.Store writes every change to Milvus first and then
here, and builds this index from Milvus when it opens a local store, so a crash loses
nothing this index cannot read back. Why it exists (docs/BENCHMARKS.md, issue 14): at
100,000 chunks Milvus Lite took 115 ms for a dense top-30 and 163 ms for a BM25 top-30 (its
segments are searched one by one in Python); a numpy scan of the same vectors took 6 ms.

Slots only grow: a removed chunk's slot is masked out until removed slots outnumber live
ones, when every array is rebuilt without them. Postings come in two parts, both sorted by
term: a base over older slots, rebuilt when the newer ones outnumber it, and a tail over
the newer ones, rebuilt on the first search after a change. A save therefore costs a search
the tail's rebuild, not the folder's.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import bm25

# The tail is folded into the base once it holds this many slots or more than the base does.
_MIN_TAIL_FOLD = 4096


class _DocTerms:
    """Each slot's term ids and counts. A loaded save keeps them as flat arrays (splitting
    them into 100,000 small ones took 1.6 s), later slots as a list."""

    def __init__(self, terms: np.ndarray | None = None, counts: np.ndarray | None = None,
                 offsets: np.ndarray | None = None) -> None:
        self.flat_terms = terms if terms is not None else np.zeros(0, np.int32)
        self.flat_counts = counts if counts is not None else np.zeros(0, np.float32)
        self.offsets = offsets if offsets is not None else np.zeros(1, np.int64)
        self.frozen = len(self.offsets) - 1
        self.terms: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []

    def append(self, terms: np.ndarray, counts: np.ndarray) -> None:
        self.terms.append(terms)
        self.counts.append(counts)

    def get(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        if slot < self.frozen:
            a, b = self.offsets[slot], self.offsets[slot + 1]
            return self.flat_terms[a:b], self.flat_counts[a:b]
        return self.terms[slot - self.frozen], self.counts[slot - self.frozen]

    def span(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Terms and counts of slots [start, end) end to end, and each slot's number of terms."""
        parts_t, parts_c, lengths = [], [], []
        if start < self.frozen:
            stop = min(end, self.frozen)
            a, b = self.offsets[start], self.offsets[stop]
            parts_t.append(self.flat_terms[a:b])
            parts_c.append(self.flat_counts[a:b])
            lengths.append(np.diff(self.offsets[start:stop + 1]))
        later = range(max(start, self.frozen) - self.frozen, end - self.frozen)
        parts_t += [self.terms[i] for i in later]
        parts_c += [self.counts[i] for i in later]
        lengths.append(np.fromiter((len(self.terms[i]) for i in later), dtype=np.int64, count=len(later)))
        return (np.concatenate(parts_t) if parts_t else np.zeros(0, np.int32),
                np.concatenate(parts_c) if parts_c else np.zeros(0, np.float32), np.concatenate(lengths))


class _Postings:
    """Per term, the slots whose text has it and how often, for slots in [start, end)."""

    def __init__(self, docs: _DocTerms, start: int, end: int, vocabulary: int) -> None:
        self.start, self.end = start, end
        all_terms, all_counts, lengths = docs.span(start, end)
        self.indptr = np.zeros(vocabulary + 1, dtype=np.int64)
        if not len(all_terms):
            self.slots = np.zeros(0, dtype=np.int32)
            self.tf = np.zeros(0, dtype=np.float32)
            return
        order = np.argsort(all_terms, kind="stable")
        self.slots = np.repeat(np.arange(start, end, dtype=np.int32), lengths)[order]
        self.tf = all_counts[order]
        np.cumsum(np.bincount(all_terms, minlength=vocabulary), out=self.indptr[1:])

    @classmethod
    def saved(cls, indptr: np.ndarray, slots: np.ndarray, tf: np.ndarray, end: int) -> _Postings:
        postings = cls.__new__(cls)
        postings.start, postings.end = 0, end
        postings.indptr, postings.slots, postings.tf = indptr, slots, tf
        return postings

    def of(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        if term + 1 >= len(self.indptr):
            return self.slots[:0], self.tf[:0]
        a, b = self.indptr[term], self.indptr[term + 1]
        return self.slots[a:b], self.tf[a:b]


class ChunkIndex:
    """Dense and BM25 retrieval over one collection's chunks, thread-safe."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._slot: dict[str, int] = {}
        # Per slot: id, path, language, start and end line, symbol, kind; None once removed.
        self._meta: list[tuple[str, str, str, int, int, str, int] | None] = []
        self._vectors = np.zeros((1024, self.dimension), dtype=np.float32)
        self._alive = np.zeros(1024, dtype=bool)
        self._embedded = np.zeros(1024, dtype=bool)
        self._path_of = np.zeros(1024, dtype=np.int32)
        self._language_of = np.zeros(1024, dtype=np.int16)
        self._length = np.zeros(1024, dtype=np.float32)
        self._paths: dict[str, int] = {}
        self._languages: dict[str, int] = {}
        self._vocabulary: dict[str, int] = {}
        self._docs = _DocTerms()
        self._live = 0
        self._total_length = 0.0
        self._base = _Postings(self._docs, 0, 0, 0)
        self._tail: _Postings | None = None
        # Chunk texts: those of a loaded save stay in its file (memory-mapped, read when shown),
        # later ones are kept here.
        self._texts: dict[int, str] = {}
        self._saved_text: np.ndarray = np.zeros(0, dtype=np.uint8)
        self._saved_offsets: np.ndarray = np.zeros(1, dtype=np.int64)

    # --- writes -------------------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            self._reset()

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Chunks as store.Store.row builds them (``dense`` is read only when ``embedded``);
        a chunk whose id is present already is replaced."""
        with self._lock:
            for row in rows:
                self._add(row)
            self._tail = None
            self._fold_if_due()

    def _add(self, row: dict[str, Any]) -> None:
        old = self._slot.get(row["id"])
        if old is not None:
            self._remove_slot(old)
        slot = self._n
        if slot == len(self._alive):
            self._grow()
        self._n += 1
        path = self._paths.setdefault(row["path"], len(self._paths))
        language = self._languages.setdefault(row["language"], len(self._languages))
        self._slot[row["id"]] = slot
        self._meta.append((row["id"], row["path"], row["language"], int(row["start_line"]), int(row["end_line"]),
                           row["symbol"], int(row["kind"])))
        self._texts[slot] = row.get("content", "")
        self._path_of[slot] = path
        self._language_of[slot] = language
        self._alive[slot] = True
        embedded = bool(row.get("embedded"))
        self._embedded[slot] = embedded
        if embedded:
            self._vectors[slot] = _unit(row["dense"])
        counts = bm25.term_counts(row.get("search_text", ""))
        vocabulary = self._vocabulary
        self._docs.append(np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in counts),
                                      dtype=np.int32, count=len(counts)),
                          np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
        length = float(sum(counts.values()))
        self._length[slot] = length
        self._live += 1
        self._total_length += length

    def set_vectors(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for id, vector in zip(ids, vectors):
                slot = self._slot.get(id)
                if slot is not None:
                    self._vectors[slot] = _unit(vector)
                    self._embedded[slot] = True

    def remove(self, ids: Iterable[str] = (), paths: Iterable[str] = ()) -> None:
        with self._lock:
            for id in ids:
                slot = self._slot.get(id)
                if slot is not None:
                    self._remove_slot(slot)
            n = self._n
            for p in paths:
                pid = self._paths.get(p)
                if pid is not None:
                    for slot in np.flatnonzero((self._path_of[:n] == pid) & self._alive[:n]).tolist():
                        self._remove_slot(slot)
            self._tail = None
            if self._n - self._live > max(self._live, _MIN_TAIL_FOLD):
                self._rebuild()

    def _remove_slot(self, slot: int) -> None:
        meta = self._meta[slot]
        assert meta is not None
        del self._slot[meta[0]]
        self._meta[slot] = None
        self._texts.pop(slot, None)
        self._alive[slot] = False
        self._embedded[slot] = False
        self._live -= 1
        self._total_length -= float(self._length[slot])

    def _grow(self) -> None:
        # By a quarter, not double: at 100,000 chunks the vectors alone are 147 MiB.
        self._reserve(len(self._alive) + max(1024, len(self._alive) // 4))

    def _reserve(self, size: int) -> None:
        if size <= len(self._alive):
            return
        # np.zeros and a copy of the rows in use: np.resize fills the new rows by repeating
        # the old ones (0.9 s for a 100,000-chunk load).
        for name in ("_vectors", "_alive", "_embedded", "_path_of", "_language_of", "_length"):
            old = getattr(self, name)
            new = np.zeros((size, *old.shape[1:]), dtype=old.dtype)
            new[:min(len(old), self._n)] = old[:self._n]
            setattr(self, name, new)

    def fold(self) -> None:
        """Fold the tail's postings into the base, building the new base outside the lock.

        After a first index the tail can hold up to half the folder (a fold doubles the base),
        and the first search after each save rebuilt it: 345 ms p50 from didSave to searchable
        at 100,958 chunks. Called when a sync ends."""
        with self._lock:
            n, vocabulary, docs = self._n, len(self._vocabulary), self._docs
            if n - self._base.end < _MIN_TAIL_FOLD:
                return
        base = _Postings(docs, 0, n, vocabulary)
        with self._lock:
            if self._docs is docs:  # not rebuilt meanwhile
                self._base, self._tail = base, None

    def _fold_if_due(self) -> None:
        tail = self._n - self._base.end
        if tail >= max(_MIN_TAIL_FOLD, self._base.end):
            self._base = _Postings(self._docs, 0, self._n, len(self._vocabulary))
            self._tail = None

    def _rebuild(self) -> None:
        """Drop removed slots: every array again, live chunks only, in their old order."""
        keep = [s for s in range(self._n) if self._alive[s]]
        rows = []
        for s in keep:
            id, path, language, start, end, symbol, kind = self._meta[s]  # type: ignore[misc]
            rows.append((id, path, language, start, end, symbol, kind, bool(self._embedded[s]),
                         self._vectors[s].copy(), *self._docs.get(s), float(self._length[s]),
                         self._text_of(s)))
        vocabulary = self._vocabulary
        self._reset()
        self._vocabulary = vocabulary
        for id, path, language, start, end, symbol, kind, embedded, vector, terms, counts, length, text in rows:
            slot = self._n
            if slot == len(self._alive):
                self._grow()
            self._n += 1
            pid = self._paths.setdefault(path, len(self._paths))
            self._slot[id] = slot
            self._meta.append((id, path, language, start, end, symbol, kind))
            self._path_of[slot] = pid
            self._language_of[slot] = self._languages.setdefault(language, len(self._languages))
            self._alive[slot] = True
            self._embedded[slot] = embedded
            self._vectors[slot] = vector
            self._docs.append(terms, counts)
            self._length[slot] = length
            self._texts[slot] = text
            self._live += 1
            self._total_length += length
        self._base = _Postings(self._docs, 0, self._n, len(self._vocabulary))

    # --- snapshot -----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the live chunks to ``directory`` (replaced whole, by a rename), so the next
        open reads them in a second instead of asking Milvus for every row."""
        with self._lock:  # copies only: searches wait for this part (0.3 s at 100,000 chunks)
            live = np.flatnonzero(self._alive[:self._n])
            metas = [self._meta[s] for s in live]
            if len(live) == self._n:
                flat_terms, flat_counts, lengths = self._docs.span(0, self._n)
            else:
                pairs = [self._docs.get(int(s)) for s in live]
                flat_terms = np.concatenate([t for t, _ in pairs]) if pairs else np.zeros(0, np.int32)
                flat_counts = np.concatenate([c for _, c in pairs]) if pairs else np.zeros(0, np.float32)
                lengths = np.fromiter((len(t) for t, _ in pairs), dtype=np.int64, count=len(pairs))
            arrays: dict[str, Any] = {
                "vectors": self._vectors[live], "embedded": self._embedded[live], "length": self._length[live],
                "path_of": self._path_of[live], "language_of": self._language_of[live],
                "terms": flat_terms, "counts": flat_counts,
            }
            vocabulary = list(self._vocabulary)
            strings = {"dimension": self.dimension, "vocabulary": vocabulary,
                       "paths": list(self._paths), "languages": list(self._languages),
                       "ids": [m[0] for m in metas], "symbols": [m[5] for m in metas]}  # type: ignore[index]
            texts = [self._text_of(int(s)) for s in live]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # The postings of the saved slots, numbered as they will load: the argsort behind them
        # took 1.6 s of a 100,000-chunk load.
        postings = _Postings(_DocTerms(flat_terms, flat_counts, offsets), 0, len(live), len(vocabulary))
        encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
        arrays.update({
            "lines": np.asarray([(m[3], m[4], m[6]) for m in metas], dtype=np.int64).reshape(-1, 3),  # type: ignore[index]
            "term_offsets": offsets, "post_indptr": postings.indptr, "post_slots": postings.slots,
            "post_tf": postings.tf, "text_offsets": np.cumsum([0, *map(len, encoded)], dtype=np.int64)})
        partial = directory.with_name(directory.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        np.savez(partial / "arrays.npz", **arrays)
        np.save(partial / "text.npy", np.frombuffer(b"".join(encoded), dtype=np.uint8))
        (partial / "strings.json").write_text(json.dumps(strings, ensure_ascii=False), encoding="utf-8")
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.rename(directory, old)
        os.rename(partial, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, dimension: int) -> ChunkIndex:
        """What save wrote; raises OSError or ValueError when it is missing or damaged."""
        strings = json.loads((directory / "strings.json").read_text(encoding="utf-8"))
        if strings["dimension"] != dimension:
            raise ValueError(f"saved for dimension {strings['dimension']}, not {dimension}")
        with np.load(directory / "arrays.npz") as data:
            arrays = {k: data[k] for k in data.files}
        ids, symbols = strings["ids"], strings["symbols"]
        n = len(ids)
        text = np.load(directory / "text.npy", mmap_mode="r")
        if not (len(arrays["vectors"]) == len(arrays["lines"]) == len(arrays["embedded"]) == len(symbols) == n
                and len(arrays["term_offsets"]) == len(arrays["text_offsets"]) == n + 1
                and arrays["text_offsets"][-1] == len(text)):
            raise ValueError("its arrays do not agree")
        index = cls(dimension)
        index._vocabulary = {t: i for i, t in enumerate(strings["vocabulary"])}
        index._reserve(n + max(1024, n // 16))  # room for the next saves without a copy
        index._n = index._live = n
        index._vectors[:n] = arrays["vectors"]
        index._embedded[:n] = arrays["embedded"]
        index._alive[:n] = True
        index._docs = _DocTerms(arrays["terms"], arrays["counts"], arrays["term_offsets"])
        index._length[:n] = arrays["length"]
        index._total_length = float(index._length[:n].sum(dtype=np.float64))
        # Column by column: a loop over the rows took a second at 100,000 chunks.
        paths, languages = strings["paths"], strings["languages"]
        index._paths = {p: i for i, p in enumerate(paths)}
        index._languages = {x: i for i, x in enumerate(languages)}
        index._path_of[:n] = arrays["path_of"]
        index._language_of[:n] = arrays["language_of"]
        index._slot = dict(zip(ids, range(n)))
        lines = arrays["lines"]
        index._meta = list(zip(ids, [paths[i] for i in arrays["path_of"].tolist()],
                               [languages[i] for i in arrays["language_of"].tolist()], lines[:, 0].tolist(),
                               lines[:, 1].tolist(), symbols, lines[:, 2].tolist()))
        if len(arrays["post_indptr"]) != len(index._vocabulary) + 1:
            raise ValueError("its postings do not fit its vocabulary")
        index._base = _Postings.saved(arrays["post_indptr"], arrays["post_slots"], arrays["post_tf"], n)
        index._saved_text, index._saved_offsets = text, arrays["text_offsets"]
        return index

    # --- reads --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._live

    def __contains__(self, id: str) -> bool:
        return id in self._slot

    def existing(self, ids: Iterable[str]) -> set[str]:
        with self._lock:
            return {i for i in ids if i in self._slot}

    def pending(self, limit: int | None = None) -> list[str]:
        """Ids of chunks without a vector yet, oldest first."""
        with self._lock:
            n = self._n
            slots = np.flatnonzero(self._alive[:n] & ~self._embedded[:n])[:limit]
            return [self._meta[s][0] for s in slots]

    def pending_count(self) -> int:
        with self._lock:
            n = self._n
            return int((self._alive[:n] & ~self._embedded[:n]).sum())

    def entries(self) -> dict[str, tuple[str, bool]]:
        """id -> (path, has a vector) of every chunk, for verification against the store."""
        with self._lock:
            return {m[0]: (m[1], bool(self._embedded[s])) for s, m in enumerate(self._meta) if m is not None}

    def text(self, id: str) -> str | None:
        """A chunk's text, None when the chunk is not here."""
        with self._lock:
            slot = self._slot.get(id)
            return self._text_of(slot) if slot is not None else None

    def _text_of(self, slot: int) -> str:
        text = self._texts.get(slot)
        if text is not None:
            return text
        a, b = self._saved_offsets[slot], self._saved_offsets[slot + 1]
        return bytes(self._saved_text[a:b]).decode("utf-8", "surrogatepass")

    def describe(self, id: str) -> tuple[str, str, int, int, str, int] | None:
        """(path, language, start_line, end_line, symbol, kind) of a chunk."""
        slot = self._slot.get(id)
        meta = self._meta[slot] if slot is not None else None
        return meta[1:] if meta is not None else None

    def dense(self, vector: np.ndarray, limit: int, languages: Collection[str] | None = None,
              paths: Collection[str] | None = None) -> list[tuple[str, float]]:
        """(id, cosine similarity) of the closest embedded chunks, best first: exact, not
        approximate (a scan of 100,000 384-d vectors takes a few ms)."""
        with self._lock:
            n = self._n
            allowed = self._allowed(languages, paths) & self._embedded[:n]
            if n == 0 or limit <= 0 or not allowed.any():
                return []
            return self._top(self._vectors[:n] @ _unit(vector), allowed, limit)

    def keyword(self, text: str, limit: int, languages: Collection[str] | None = None,
                paths: Collection[str] | None = None, k1: float = bm25.K1,
                b: float = bm25.B) -> list[tuple[str, float]]:
        """(id, BM25 score) of the best matching chunks, best first; statistics over every
        live chunk, whatever the filter keeps."""
        with self._lock:
            n = self._n
            if n == 0 or limit <= 0 or self._live == 0:
                return []
            if self._tail is None:
                self._tail = _Postings(self._docs, self._base.end, n, len(self._vocabulary))
            avgdl = self._total_length / self._live
            scores = np.zeros(n, dtype=np.float64)
            for term, weight in bm25.term_counts(text).items():
                tid = self._vocabulary.get(term)
                if tid is None:
                    continue
                base_slots, base_tf = self._base.of(tid)
                tail_slots, tail_tf = self._tail.of(tid)
                slots = np.concatenate([base_slots, tail_slots])
                tf = np.concatenate([base_tf, tail_tf])
                live = self._alive[slots]
                slots, tf = slots[live], tf[live]
                if not len(slots):
                    continue
                w = bm25.idf(self._live, len(slots)) * weight * bm25.term_weight(tf, self._length[slots], avgdl, k1, b)
                scores += np.bincount(slots, weights=w, minlength=n)
            allowed = self._allowed(languages, paths) & (scores > 0)
            if not allowed.any():
                return []
            return self._top(scores, allowed, limit)

    def _allowed(self, languages: Collection[str] | None, paths: Collection[str] | None) -> np.ndarray:
        n = self._n
        allowed = self._alive[:n].copy()
        if languages is not None:
            ids = [self._languages[x] for x in languages if x in self._languages]
            allowed &= np.isin(self._language_of[:n], np.asarray(ids, dtype=np.int16))
        if paths is not None:
            ids = [self._paths[p] for p in paths if p in self._paths]
            allowed &= np.isin(self._path_of[:n], np.asarray(ids, dtype=np.int32))
        return allowed

    def _top(self, scores: np.ndarray, allowed: np.ndarray, limit: int) -> list[tuple[str, float]]:
        count = int(allowed.sum())
        k = min(limit, count)
        candidates = np.flatnonzero(allowed) if count < len(scores) // 4 else None
        if candidates is not None:
            sub = scores[candidates]
            part = np.argpartition(-sub, k - 1)[:k] if k < len(sub) else np.arange(len(sub))
            top = candidates[part]
        else:
            scores = np.where(allowed, scores, -np.inf)
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.flatnonzero(allowed)
        # Ties broken by slot, oldest first, so equal scores always come back in one order.
        top = top[np.lexsort((top, -scores[top]))]
        out = []
        for s in top:
            meta = self._meta[int(s)]
            assert meta is not None
            out.append((meta[0], float(scores[s])))
        return out


def _unit(vector: Any) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
