"""The workspace's symbols, searchable as you type and kept in state.db.

Every symbol name of the workspace is kept in memory with precomputed character bitmasks
(symbol_match.py), so a query narrows 100k names with a few numpy operations before any
Python code looks at a name. It is persisted to SQLite so a restart does not re-parse the
workspace.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .symbol_match import (
    LETTERS,
    MAX_WORD_QUERY,
    SEPARATORS,
    char_bit,
    char_mask,
    names_info,
    pair_bit,
    parse_query,
    regex_word_limit,
    score,
    subsequence_gaps,
    subsequence_regex,
    word_pieces,
    word_regex,
)
from .symbols import EXTRACTOR_VERSION, Symbol

log = logging.getLogger(__name__)

MAX_RESULTS = 200


_NO_MATCH = 3  # container rank of a symbol a container query excludes
# A hit while ranking: (tier, container rank, case mismatch, name length, gaps, path rank, slot).
_Hit = tuple[int, int, int, int, int, int, int]


class SymbolIndex:
    """All symbols of a workspace in memory for fast fuzzy search, persisted in SQLite.

    Symbols live in slots. numpy arrays hold per-slot name masks, lengths, container ids and
    liveness, so a query rejects most names without a Python loop. For exact and prefix
    lookups the slots are kept sorted by lowercase name; slots added since the last sort sit in
    a small unsorted `delta` that is scanned directly, and the sort is redone only when the
    delta grows, so an edit costs about the size of the edited file."""

    def __init__(self, db_path: Path) -> None:
        self._lock = threading.RLock()
        # True when stored symbols were unreadable or written by another extractor version
        # and were dropped: the caller should extract every file again.
        self.needs_rebuild = False
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._reset()
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._open()
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                    self._db.close()
                    raise  # the owner of state.db deletes and recreates a damaged file
                # locked, read-only, ...: that costs persistence, not search
                log.warning("symbol index %s unreadable, starting empty: %s", db_path, exc)
                self._reset()
                self.needs_rebuild = True

    # -- storage

    def _open(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS symbol_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS symbol_files (path TEXT PRIMARY KEY, symbols TEXT NOT NULL)")
        row = db.execute("SELECT value FROM symbol_meta WHERE key = 'version'").fetchone()
        version = str(EXTRACTOR_VERSION)
        if row is None or row[0] != version:
            self.needs_rebuild = db.execute("SELECT COUNT(*) FROM symbol_files").fetchone()[0] > 0
            db.execute("BEGIN")
            db.execute("DELETE FROM symbol_files")
            db.execute("INSERT OR REPLACE INTO symbol_meta VALUES ('version', ?)", (version,))
            db.execute("COMMIT")
            return
        loaded: list[tuple[str, list[Symbol]]] = []
        for path, blob in db.execute("SELECT path, symbols FROM symbol_files"):
            try:
                loaded.append((path, [Symbol(n, k, c, (r0, r1, r2, r3), (s0, s1, s2, s3))
                                      for n, k, c, r0, r1, r2, r3, s0, s1, s2, s3 in json.loads(blob)]))
            except (ValueError, TypeError) as exc:
                log.warning("stored symbols of %s unreadable, dropping them: %s", path, exc)
                self.needs_rebuild = True
        self._add(loaded)
        self._merge()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            self._db.execute("BEGIN")
            self._db.execute(sql, args)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # search keeps working from memory
            log.warning("symbol index write failed: %s", exc)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    # -- public API

    def replace_file(self, path: str, symbols: list[Symbol]) -> None:
        """Store a file's symbols (path workspace-relative, posix), replacing older ones."""
        blob = json.dumps([[s.name, s.kind, s.container, *s.range, *s.selection_range] for s in symbols],
                          separators=(",", ":"))
        with self._lock:
            self._write("INSERT OR REPLACE INTO symbol_files (path, symbols) VALUES (?, ?)", (path, blob))
            self._remove(path)
            self._add([(path, symbols)])

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._write("DELETE FROM symbol_files WHERE path = ?", (path,))
            self._remove(path)

    def clear(self) -> None:
        with self._lock:
            self._write("DELETE FROM symbol_files", ())
            self._reset()
            self.needs_rebuild = False

    def files(self) -> set[str]:
        with self._lock:
            return set(self._files)

    def __len__(self) -> int:
        return self._count

    def symbols_in(self, path: str) -> list[Symbol]:
        with self._lock:
            syms = self._syms
            return [syms[s] for s in self._files.get(path, ())]  # type: ignore[misc]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- memory

    def _reset(self) -> None:
        self._syms: list[Symbol | None] = []
        self._lower: list[str] = []
        self._slot_path: list[str] = []
        self._files: dict[str, list[int]] = {}
        self._count = 0
        self._free: list[int] = []  # dead slots that the sorted order no longer lists
        self._retired: list[int] = []  # dead slots still listed in the sorted order
        self._sorted_keys: list[str] = []  # lowercase names, sorted
        self._sorted_slots = np.zeros(0, dtype=np.int64)
        self._delta: list[int] = []  # slots added since the last sort
        self._file_ids: dict[str, int] = {}
        self._file_paths: list[str] = []
        self._path_rank = np.zeros(0, dtype=np.int32)
        self._paths_dirty = False
        self._containers: dict[str, int] = {}
        self._container_lower: list[str] = []
        self._container_mask = np.zeros(0, dtype=np.uint64)
        self._words: list[str] = []  # per slot: "word|word" of the lowercase name
        self._chars = np.zeros(0, dtype=np.uint64)
        self._initials = np.zeros(0, dtype=np.uint64)
        self._pairs = np.zeros(0, dtype=np.uint64)
        self._starts = np.zeros(0, dtype=np.uint64)
        self._len = np.zeros(0, dtype=np.int32)
        self._nwords = np.zeros(0, dtype=np.int32)
        self._alive = np.zeros(0, dtype=bool)
        self._cid = np.zeros(0, dtype=np.int32)  # container id, -1 for none
        self._fid = np.zeros(0, dtype=np.int32)

    _ARRAYS = ("_chars", "_initials", "_pairs", "_starts", "_len", "_nwords", "_alive", "_cid", "_fid")

    def _grow(self, needed: int) -> None:
        cap = len(self._alive)
        if needed <= cap:
            return
        new = max(needed, cap * 2, 1024)
        for attr in self._ARRAYS:
            old = getattr(self, attr)
            arr = np.zeros(new, dtype=old.dtype)
            arr[:cap] = old
            setattr(self, attr, arr)

    def _container_id(self, container: str | None) -> int:
        if not container:
            return -1
        cid = self._containers.get(container)
        if cid is None:
            cid = len(self._container_lower)
            self._containers[container] = cid
            lower = container.lower()
            self._container_lower.append(lower)
            if cid >= len(self._container_mask):
                grown = np.zeros(max(64, 2 * len(self._container_mask)), dtype=np.uint64)
                grown[:cid] = self._container_mask[:cid]
                self._container_mask = grown
            self._container_mask[cid] = char_mask(lower)
        return cid

    def _add(self, files: list[tuple[str, list[Symbol]]]) -> None:
        new_syms = [sym for _, syms in files for sym in syms]
        reuse = min(len(self._free), len(new_syms))
        slots = [self._free.pop() for _ in range(reuse)]
        first = len(self._syms)
        slots.extend(range(first, first + len(new_syms) - reuse))
        grow = len(new_syms) - reuse
        self._grow(first + grow)
        self._syms.extend([None] * grow)
        self._lower.extend([""] * grow)
        self._words.extend([""] * grow)
        self._slot_path.extend([""] * grow)
        cids = []
        fids = []
        i = 0
        for path, syms in files:
            fid = self._file_ids.get(path)
            if fid is None:
                fid = self._file_ids[path] = len(self._file_paths)
                self._file_paths.append(path)
            self._files[path] = slots[i:i + len(syms)]
            for sym in syms:
                slot = slots[i]
                self._syms[slot] = sym
                self._lower[slot] = sym.name.lower()
                self._slot_path[slot] = path
                cids.append(self._container_id(sym.container))
                fids.append(fid)
                i += 1
        self._paths_dirty = True
        self._count += len(new_syms)
        if not new_syms:
            return
        idx = np.array(slots, dtype=np.int64)
        chars, initials, pairs, starts, words = names_info([s.name for s in new_syms])
        for slot, form in zip(slots, words):
            self._words[slot] = form
        self._nwords[idx] = [form.count("|") + 1 if form else 0 for form in words]
        self._chars[idx] = chars
        self._initials[idx] = initials
        self._pairs[idx] = pairs
        self._starts[idx] = starts
        self._len[idx] = [len(self._lower[s]) for s in slots]
        self._alive[idx] = True
        self._cid[idx] = cids
        self._fid[idx] = fids
        self._delta.extend(slots)
        self._maybe_merge()

    def _remove(self, path: str) -> None:
        slots = self._files.pop(path, None)
        if not slots:
            return
        for slot in slots:
            self._syms[slot] = None
        self._alive[np.array(slots, dtype=np.int64)] = False
        self._retired.extend(slots)
        self._count -= len(slots)
        self._paths_dirty = True
        self._maybe_merge()

    def _maybe_merge(self) -> None:
        if len(self._delta) + len(self._retired) > max(1024, len(self._sorted_keys) // 32):
            self._merge()

    def _merge(self) -> None:
        """Sort all live slots by lowercase name again; retired slots become reusable."""
        alive = np.flatnonzero(self._alive[:len(self._syms)])
        lower = self._lower
        keys = [lower[s] for s in alive.tolist()]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self._sorted_keys = [keys[i] for i in order]
        self._sorted_slots = alive[np.array(order, dtype=np.int64)] if order else np.zeros(0, dtype=np.int64)
        self._delta = []
        self._free.extend(self._retired)
        self._retired = []

    def _ranks(self) -> np.ndarray:
        """Rank of each file id by path, for a stable, meaningful tie-break."""
        if self._paths_dirty:
            order = sorted(range(len(self._file_paths)), key=self._file_paths.__getitem__)
            ranks = np.zeros(len(order), dtype=np.int32)
            ranks[order] = np.arange(len(order), dtype=np.int32)
            self._path_rank = ranks
            self._paths_dirty = False
        return self._path_rank

    # -- search

    def search(self, query: str, limit: int = MAX_RESULTS) -> list[tuple[str, Symbol, float]]:
        """Symbols matching a fuzzy query, best first, as (path, symbol, score).

        Tiers: exact name (exact case first), prefix, word starts (`hr` -> handle_request),
        any subsequence; within a tier shorter names, then fewer gaps, then path. `A.b` and
        `A::b` keep symbols whose container matches A (a dotted suffix first, then fuzzy)."""
        limit = max(0, min(limit, MAX_RESULTS))
        parsed = parse_query(query)
        if parsed is None or limit == 0:
            return []
        q, typed, cq = parsed
        with self._lock:
            n = len(self._syms)
            if self._count == 0:
                return []
            crank = self._container_ranks(cq, n) if cq else None
            ranks = self._ranks()
            hits = self._match(q, typed, crank, ranks, limit) if q else self._members(crank, ranks, limit)
            out = []
            ceiling = 1.0
            for tier, cr, case, length, gaps, _rank, slot in hits[:limit]:
                sym = self._syms[slot]
                assert sym is not None
                # Never above the hit before: merging folders by score keeps this order.
                words_left = gaps // LETTERS if tier == 3 else gaps
                ceiling = min(ceiling, score(tier, length - len(q), words_left + cr, tier == 1 and case == 0))
                out.append((self._slot_path[slot], sym, ceiling))
            return out

    def _container_ranks(self, cq: str, n: int) -> np.ndarray:
        """Per slot: 0 container is cq or ends with `.cq`, 1 its last parts contain cq
        (`HTTPConnection` for `connection`), 2 fuzzy match, _NO_MATCH otherwise."""
        count = len(self._container_lower)
        by_container = np.full(count + 1, _NO_MATCH, dtype=np.int8)  # the last entry: no container
        if count:
            qm = np.uint64(char_mask(cq))
            suffix = "." + cq
            parts = cq.count(".") + 1
            lowers = self._container_lower
            for cid in np.flatnonzero((self._container_mask[:count] & qm) == qm).tolist():
                lower = lowers[cid]
                if lower == cq or lower.endswith(suffix):
                    by_container[cid] = 0
                elif cq in ".".join(lower.rsplit(".", parts)[-parts:]):
                    by_container[cid] = 1
                elif subsequence_gaps(cq, lower) is not None:
                    by_container[cid] = 2
        return by_container[self._cid[:n]]  # -1 (no container) picks the last entry

    def _members(self, crank: np.ndarray | None, ranks: np.ndarray, limit: int) -> list[_Hit]:
        """`Session.` with no name: the container's symbols, shortest names first."""
        assert crank is not None
        slots = np.flatnonzero(self._alive[:len(self._syms)] & (crank < _NO_MATCH))
        return self._rank_block(slots, np.full(len(slots), 2), crank, ranks, limit, np.zeros(len(slots)))

    def _rank_block(self, slots: np.ndarray, tiers: np.ndarray, crank: np.ndarray | None, ranks: np.ndarray,
                    limit: int, case: np.ndarray) -> list[_Hit]:
        if len(slots) == 0:
            return []
        cr = crank[slots] if crank is not None else np.zeros(len(slots), dtype=np.int8)
        lengths = self._len[slots]
        pr = ranks[self._fid[slots]]
        order = np.lexsort((slots, pr, lengths, case, cr, tiers))[:limit]
        return [(int(tiers[i]), int(cr[i]), int(case[i]), int(lengths[i]), 0, int(pr[i]), int(slots[i]))
                for i in order.tolist()]

    def _prefixed(self, q: str) -> np.ndarray:
        """Live slots whose lowercase name starts with q."""
        keys = self._sorted_keys
        lo = bisect.bisect_left(keys, q)
        hi = bisect.bisect_left(keys, q[:-1] + chr(ord(q[-1]) + 1)) if ord(q[-1]) < 0x10FFFF else len(keys)
        found = self._sorted_slots[lo:hi]
        found = found[self._alive[found]]
        if self._delta:
            lower, syms = self._lower, self._syms
            extra = [s for s in self._delta if syms[s] is not None and lower[s].startswith(q)]
            if extra:
                found = np.concatenate([found, np.array(extra, dtype=np.int64)])
        return found

    def _match(self, q: str, typed: str, crank: np.ndarray | None, ranks: np.ndarray, limit: int) -> list[_Hit]:
        n = len(self._syms)
        # Tiers 1 and 2: exact and prefix names.
        slots = self._prefixed(q)
        if crank is not None:
            slots = slots[crank[slots] < _NO_MATCH]
        exact = self._len[slots] == len(q)
        case = np.zeros(len(slots), dtype=np.int8)
        syms = self._syms
        for i in np.flatnonzero(exact).tolist():
            case[i] = syms[int(slots[i])].name != typed  # type: ignore[union-attr]
        hits = self._rank_block(slots, np.where(exact, 1, 2), crank, ranks, limit, case)
        need = limit - len(hits)
        if need <= 0:
            return hits
        # Tiers 3 and 4: numpy prefilters, then Python matching in (container, length) order.
        lengths = self._len[:n]
        base = self._alive[:n] & (lengths > len(q))
        if crank is not None:
            base &= crank < _NO_MATCH
        words = "".join(c for c in q if c not in SEPARATORS)
        tier3: list[_Hit] = []
        if words and len(words) <= MAX_WORD_QUERY:
            wm = np.uint64(char_mask(words))
            cand = base & ((self._chars[:n] & wm) == wm)
            cand &= (self._initials[:n] & np.uint64(char_bit(words[0]))) != 0
            cand_slots = np.flatnonzero(cand)
            if len(words) > 1:
                cand_slots = cand_slots[(self._starts[cand_slots] & np.uint64(pair_bit(words[0], words[1]))) != 0]
                initials = self._initials[cand_slots]
                pairs = self._pairs[cand_slots]
                keep = np.ones(len(cand_slots), dtype=bool)
                for a, b in zip(words[1:8], words[2:9]):
                    keep &= ((pairs & np.uint64(pair_bit(a, b))) != 0) | ((initials & np.uint64(char_bit(b))) != 0)
                cand_slots = cand_slots[keep]
            tier3 = self._word_hits(cand_slots, words, crank, ranks, need, q)
            hits.extend(tier3[:need])
            need = limit - len(hits)
            if need <= 0:
                return hits
        matched = {h[-1] for h in tier3}
        qm = np.uint64(char_mask(q))
        cand_slots = np.flatnonzero(base & ((self._chars[:n] & qm) == qm))

        def run_gaps(m: re.Match[str], slot: int) -> int | None:
            skipped = m.groups()  # "" where the query's characters are adjacent
            return None if slot in matched else len(skipped) - skipped.count("")

        tier4 = self._scan(cand_slots, 4, crank, ranks, need, q, self._lower, subsequence_regex(q).match, run_gaps)
        hits.extend(tier4[:need])
        return hits

    def _word_hits(self, slots: np.ndarray, words: str, crank: np.ndarray | None, ranks: np.ndarray, need: int,
                   q: str) -> list[_Hit]:
        """Tier 3: names whose words start with successive pieces of the query."""
        def rank(m: object, slot: int) -> int | None:
            # Words left untouched, then query letters not on a word start: 0 is every word
            # of the name touched, each by one letter. Both fall as more words are touched.
            parts = self._words[slot].split("|")
            pieces = word_pieces(words, parts)
            return None if pieces is None else (len(parts) - pieces) * LETTERS + (len(words) - pieces)

        def search(form: str) -> int | None:
            return word_pieces(words, form.split("|"))

        small = self._nwords[slots] <= regex_word_limit(len(words))
        hits = self._scan(slots[small], 3, crank, ranks, need, q, self._words, word_regex(words).match, rank)
        if not small.all():
            hits += self._scan(slots[~small], 3, crank, ranks, need, q, self._words, search, rank)
            hits.sort(key=_TIER_KEYS[3])
        return hits

    def _scan(self, slots: np.ndarray, tier: int, crank: np.ndarray | None, ranks: np.ndarray, need: int, q: str,
              texts: list[str], probe: Callable[[str], Any], gaps_of: Callable[[Any, int], int | None]) -> list[_Hit]:
        """Probe texts[slot] in (container rank, length) order until the best `need` hits are
        certain; the hits, sorted. probe is a compiled regex's match where possible: the loop
        does no Python call for a name that does not match."""
        if len(slots) == 0:
            return []
        lengths = self._len[slots]
        cr = crank[slots] if crank is not None else np.zeros(len(slots), dtype=np.int8)
        order = np.lexsort((lengths, cr))
        keys = (cr[order].astype(np.int64) << 32 | lengths[order]).tolist()
        lowers = self._lower
        found: list[tuple[int, int, int]] = []
        # Nothing later in the scan can outrank `need` hits that are as good as any can be:
        # gapless when gaps rank before length, any hit when length ranks first.
        gaps_first = tier == 3
        settled = 0
        cutoff = None
        for slot, key in zip(slots[order].tolist(), keys):
            if cutoff is not None and key > cutoff:
                break
            m = probe(texts[slot])
            if m is None or lowers[slot].startswith(q):  # no match, or tiers 1 and 2
                continue
            gaps = gaps_of(m, slot)
            if gaps is None:
                continue
            found.append((key, gaps, slot))
            if gaps == 0 or not gaps_first:
                settled += 1
                if cutoff is None and settled >= need:
                    cutoff = key
        if not found:
            return []
        path_ranks = ranks[self._fid[np.array([f[2] for f in found], dtype=np.int64)]].tolist()
        hits = [(tier, key >> 32, 0, key & 0xFFFFFFFF, gaps, rank, slot)
                for (key, gaps, slot), rank in zip(found, path_ranks)]
        hits.sort(key=_TIER_KEYS[tier])
        return hits


# Order inside a tier: container rank, then (length, gaps) or (gaps, length), then path, slot.
_TIER_KEYS = {
    3: lambda h: (h[1], h[4], h[3], h[5], h[6]),
    4: lambda h: (h[1], h[3], h[4], h[5], h[6]),
}
