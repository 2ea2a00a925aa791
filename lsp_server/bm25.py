"""BM25 scoring as pure functions over numpy arrays.

The formula is the one Milvus Lite scores its sparse BM25 field with (Lucene's idf,
``k1`` 1.5, ``b`` 0.75, a query term counted as often as it occurs in the query), so moving
keyword search in-process changed no ranking rule. What changed is the statistics: Milvus
Lite keeps document counts and lengths per segment, so a chunk saved a minute ago sits in a
small segment where every word is rare, and scores as if it were; chunk_index keeps them
over the whole folder.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

K1 = 1.5
B = 0.75

# Milvus Lite's standard analyzer: \w+ runs, lower-cased. search_text is already lower-case
# words separated by spaces (tokens.expand_identifiers), so both read it the same way.
_WORD = re.compile(r"\w+", re.UNICODE)


def analyze(text: str) -> list[str]:
    """The terms of a text, as many times as they occur."""
    return _WORD.findall(text.lower())


def term_counts(text: str) -> Counter[str]:
    return Counter(analyze(text))


def idf(docs: int, df: np.ndarray | int) -> np.ndarray:
    """Lucene's idf: never negative, however common the term."""
    df = np.asarray(df, dtype=np.float64)
    return np.log((docs - df + 0.5) / (df + 0.5) + 1.0)


def term_weight(tf: np.ndarray, doc_len: np.ndarray, avgdl: float, k1: float = K1, b: float = B) -> np.ndarray:
    """The saturated, length-normalised weight of a term's count in each document."""
    tf = tf.astype(np.float64, copy=False)
    norm = k1 * (1.0 - b + b * doc_len / (avgdl if avgdl > 0 else 1.0))
    return tf * (k1 + 1.0) / (tf + norm)
