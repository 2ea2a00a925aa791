"""Fuzzy matching of symbol names, as an editor's "go to symbol" does: pure functions.

Every name gets four 64-bit masks, so most names fail a query in vectorised code before any
Python looks at them; the survivors are ranked by tier (exact, prefix, word starts,
subsequence), then by how much of the name is left over. symbol_index.py keeps the masks.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from .tokens import segments

# Queries longer than this match only by exact name, prefix or subsequence, not word starts.
MAX_WORD_QUERY = 48
LETTERS = MAX_WORD_QUERY + 1  # radix of a word-start match's rank: untouched words, then letters


#
# Every name gets four 64-bit masks, so most names fail a query in vectorised code:
#   chars:    its lowercase characters (a-z, 0-9, _ own a bit; others share 27 hashed bits)
#   initials: the first characters of its words
#   pairs:    hashed adjacent character pairs
#   starts:   hashed (word start, next character of that word or a later word's start) pairs,
#             which the first two characters of any word-start match must form

SEPARATORS = frozenset("_-.$:/ ")
_WORD_PAIR_LIMIT = 8  # names with more words get an all-ones `starts` mask
_ALL_BITS = (1 << 64) - 1
_CHAR_BITS: dict[str, int] = {c: 1 << i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz0123456789_")}


def char_bit(c: str) -> int:
    bit = _CHAR_BITS.get(c)
    return bit if bit is not None else 1 << (37 + ord(c) % 27)


def char_mask(text: str) -> int:
    mask = 0
    for c in set(text):
        mask |= char_bit(c)
    return mask


def pair_bit(a: str, b: str) -> int:
    return 1 << ((ord(a) * 31 + ord(b) * 7) & 63)


def _name_segments(name: str, lower: str) -> tuple[tuple[int, int], ...]:
    # Lowercasing a few non-ASCII letters changes the length; their case boundaries are lost.
    return segments(name) if len(lower) == len(name) else segments(lower)


def name_info(name: str) -> tuple[int, int, int, int, str]:
    """(chars, initials, pairs, starts) masks and "word|word" form of one name; the
    reference for names_info."""
    lower = name.lower()
    segs = _name_segments(name, lower)
    initials = 0
    starts = 0
    for s, e in segs:
        initials |= char_bit(lower[s])
        if e - s >= 2:
            starts |= pair_bit(lower[s], lower[s + 1])
    if len(segs) > _WORD_PAIR_LIMIT:
        starts = _ALL_BITS
    else:
        for j, (s, _) in enumerate(segs):
            for t, _ in segs[j + 1:]:
                starts |= pair_bit(lower[s], lower[t])
    pairs = 0
    for a, b in zip(lower, lower[1:]):
        pairs |= pair_bit(a, b)
    return char_mask(lower), initials, pairs, starts, "|".join(lower[s:e] for s, e in segs)


def _ascii_table(pred) -> np.ndarray:
    return np.array([pred(chr(i)) if i else False for i in range(256)], dtype=bool)


_T_ALNUM = _ascii_table(lambda c: c.isascii() and c.isalnum())
_T_UPPER = _ascii_table(lambda c: c.isascii() and c.isupper())
_T_LOWER = _ascii_table(lambda c: c.isascii() and c.islower())
_T_DIGIT = _ascii_table(lambda c: c.isascii() and c.isdigit())
_T_TOLOWER = np.array([ord(chr(i).lower()) if i < 128 else i for i in range(256)], dtype=np.uint8)
_T_BITS = np.array([char_bit(chr(i)) if 0 < i < 128 else 0 for i in range(256)], dtype=np.uint64)


def _pair_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.left_shift(np.uint64(1), (a.astype(np.uint64) * np.uint64(31) + b.astype(np.uint64) * np.uint64(7))
                         & np.uint64(63))


def names_info(names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """name_info for many names at once: vectorised for ASCII names, which are nearly all."""
    masks = tuple(np.zeros(len(names), dtype=np.uint64) for _ in range(4))
    words = [""] * len(names)
    fast = [i for i, nm in enumerate(names) if 0 < len(nm) <= 64 and nm.isascii()]
    fast_set = set(fast)
    for i, nm in enumerate(names):
        if i not in fast_set:
            *values, words[i] = name_info(nm)
            for arr, value in zip(masks, values):
                arr[i] = value
    zero = np.uint64(0)
    for chunk_start in range(0, len(fast), 8192):
        rows = fast[chunk_start:chunk_start + 8192]
        width = max(len(names[i]) for i in rows)
        raw = b"".join(names[i].encode("ascii").ljust(width, b"\0") for i in rows)
        m = np.frombuffer(raw, dtype=np.uint8).reshape(len(rows), width)
        low = _T_TOLOWER[m]
        bits = _T_BITS[low]
        alnum, upper, lower, digit = _T_ALNUM[m], _T_UPPER[m], _T_LOWER[m], _T_DIGIT[m]
        pad = np.zeros((len(rows), 1), dtype=bool)
        prev_alnum = np.hstack([pad, alnum[:, :-1]])
        prev_upper = np.hstack([pad, upper[:, :-1]])
        prev_lower = np.hstack([pad, lower[:, :-1]])
        prev_digit = np.hstack([pad, digit[:, :-1]])
        next_lower = np.hstack([lower[:, 1:], pad])
        start = alnum & (~prev_alnum | (upper & (prev_lower | prev_digit)) | (upper & prev_upper & next_lower)
                         | (digit != prev_digit))
        masks[0][rows] = np.bitwise_or.reduce(bits, axis=1)
        masks[1][rows] = np.bitwise_or.reduce(np.where(start, bits, zero), axis=1)
        if width > 1:
            pair = _pair_bits(low[:, :-1], low[:, 1:])
            masks[2][rows] = np.bitwise_or.reduce(np.where(low[:, 1:] != 0, pair, zero), axis=1)
            in_word = start[:, :-1] & alnum[:, 1:] & ~start[:, 1:]
            starts = np.bitwise_or.reduce(np.where(in_word, pair, zero), axis=1)
        else:
            starts = np.zeros(len(rows), dtype=np.uint64)
        # the first _WORD_PAIR_LIMIT word initials of each name, as a (rows x limit) matrix
        hit_rows, hit_cols = np.nonzero(start)
        counts = start.sum(axis=1)
        rank = np.arange(len(hit_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < _WORD_PAIR_LIMIT
        initials = np.zeros((len(rows), _WORD_PAIR_LIMIT), dtype=np.uint8)
        initials[hit_rows[keep], rank[keep]] = low[hit_rows[keep], hit_cols[keep]]
        for j in range(_WORD_PAIR_LIMIT):
            for k in range(j + 1, _WORD_PAIR_LIMIT):
                present = initials[:, k] != 0
                if not present.any():
                    break
                starts |= np.where(present, _pair_bits(initials[:, j], initials[:, k]), zero)
        starts[counts > _WORD_PAIR_LIMIT] = np.uint64(_ALL_BITS)
        masks[3][rows] = starts
        # "word|word" forms: a bar before every word start but the first, alphanumerics kept
        out = np.zeros((len(rows), 2 * width + 1), dtype=np.uint8)
        out[:, 0:2 * width:2] = np.where(start & (np.cumsum(start, axis=1) > 1), ord("|"), 0)
        out[:, 1:2 * width:2] = np.where(alnum, low, 0)
        out[:, 2 * width] = ord("\n")
        flat = out.ravel()
        for i, form in zip(rows, flat[flat != 0].tobytes().decode("ascii").split("\n")):
            words[i] = form
    return masks[0], masks[1], masks[2], masks[3], words


def word_pieces(q: str, words: list[str]) -> int | None:
    """The most words q can touch when matched as prefixes of successive words of a name
    (`gcs`, `getconsum` -> get, content, summary: 3), or None when it cannot. Most words,
    because each letter on a word start is evidence: `teaw` is test_east_asian_width (4),
    not test_Awaitable (2). Memoised on (query position, word), so polynomial on
    adversarial names; recursion depth is at most len(q)."""
    memo: dict[tuple[int, int], int | None] = {}

    def best(qi: int, wi: int) -> int | None:
        if qi == len(q):
            return 0
        if (qi, wi) in memo:
            return memo[(qi, wi)]
        found: int | None = None
        for wj in range(wi, len(words)):
            word = words[wj]
            if not word or word[0] != q[qi]:
                continue
            k = 1
            limit = min(len(word), len(q) - qi)
            while k < limit and word[k] == q[qi + k]:
                k += 1
            for taken in range(k, 0, -1):
                rest = best(qi + taken, wj + 1)
                if rest is not None and (found is None or rest + 1 > found):
                    found = rest + 1
        memo[(qi, wi)] = found
        return found

    return best(0, 0)


# Whether word_pieces matches at all, as a regex over "word|word|word", which runs in C. It
# backtracks exponentially on adversarial input, so it only sees names whose words and the
# query's length allow few placements: comb(words + k, k) <= this budget (a worst case of
# about 0.1 ms per name).
_REGEX_BUDGET = 3000


@functools.lru_cache(maxsize=64)
def regex_word_limit(k: int) -> int:
    """The most words a name may have for the word regex of a k-character query."""
    words = 0
    while math.comb(words + 1 + k, k) <= _REGEX_BUDGET:
        words += 1
    return words


@functools.lru_cache(maxsize=64)
def word_regex(q: str) -> re.Pattern[str]:
    """Matches "word|word" forms that q matches by word starts (a prefilter: the ranking
    placement comes from word_pieces)."""
    parts = [r"(?:[^|]*\|)*?", re.escape(q[0])]
    for c in q[1:]:
        parts += [r"([^|]*\|(?:[^|]*\|)*?)??", re.escape(c)]
    return re.compile("".join(parts))


@functools.lru_cache(maxsize=64)
def subsequence_regex(q: str) -> re.Pattern[str]:
    """q's characters in order, leftmost, with a group per run skipped between them.
    Possessive runs never backtrack: linear time."""
    parts = [f"[^{re.escape(q[0])}]*+{re.escape(q[0])}"]
    for c in q[1:]:
        parts.append(f"([^{re.escape(c)}]*+){re.escape(c)}")
    return re.compile("".join(parts))


def subsequence_gaps(q: str, lower: str) -> int | None:
    """Breaks between runs when q's characters are found in order, leftmost; or None."""
    pos = -1
    gaps = 0
    for c in q:
        found = lower.find(c, pos + 1)
        if found < 0:
            return None
        if pos >= 0 and found != pos + 1:
            gaps += 1
        pos = found
    return gaps


def parse_query(query: str) -> tuple[str, str, str] | None:
    """(name query lowercased, name query as typed, container query lowercased)."""
    q = "".join(query.split()).replace("::", ".")
    if not q:
        return None
    container, _, name = q.rpartition(".")
    container = container.strip(".").lower()
    if not name and not container:
        return None
    return name.lower(), name, container


def score(tier: int, extra_len: int, gaps: int, exact_case: bool) -> float:
    """Monotone in tier: each tier owns a band of width 0.25, tier 1 highest."""
    return (4 - tier) / 4 + 0.2 / (1 + extra_len + gaps) + (0.04 if exact_case else 0.0)


