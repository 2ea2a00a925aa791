"""Symbols (functions, classes, ...) of a file, and a fuzzy index over a workspace's symbols.

Extraction runs each grammar's upstream ``tags.scm`` query over the syntax tree the chunker
already built, plus a few patterns of our own for definitions those queries miss (enums, type
aliases, constants, namespaces). Languages without a tags query yield no symbols.

The index answers workspace/symbol as you type: every symbol name of the workspace is kept in
memory with precomputed character bitmasks, so a query narrows 100k names with a few numpy
operations before any Python code looks at a name. It is persisted to SQLite so a restart
does not re-parse the workspace.

Positions are 0-based; characters are counted in UTF-16 code units, as LSP expects by
default (tree-sitter reports bytes; lines that are pure ASCII are taken as they are).
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import math
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import tree_sitter

from . import languages
from .kinds import SymbolKind

log = logging.getLogger(__name__)

Range = tuple[int, int, int, int]  # start line, start character, end line, end character

# Bump when extraction changes: stored symbols from an older extractor are dropped.
# 2: ranges cover Rust attributes and TypeScript member decorators above a definition.
EXTRACTOR_VERSION = 2
MAX_RESULTS = 200
# Containers keep their innermost parts only, so absurd nesting cannot cost quadratic memory.
MAX_CONTAINER_PARTS = 32
# Outlines deeper than this are flattened: clients and JSON encoders recurse on children.
MAX_OUTLINE_DEPTH = 64
# Queries longer than this match only by exact name, prefix or subsequence, not word starts.
MAX_WORD_QUERY = 48
_LETTERS = MAX_WORD_QUERY + 1  # radix of a word-start match's rank: untouched words, then letters

_K = SymbolKind
_TAG_KINDS: dict[str, int] = {
    "function": _K.Function, "method": _K.Method, "class": _K.Class, "interface": _K.Interface,
    "module": _K.Module, "namespace": _K.Namespace, "constant": _K.Constant, "type": _K.TypeParameter,
    "macro": _K.Function, "enum": _K.Enum, "struct": _K.Struct, "field": _K.Field,
    "property": _K.Property, "variable": _K.Variable, "object": _K.Object, "constructor": _K.Constructor,
    "trait": _K.Interface, "union": _K.Struct,
}
# The definition node's type says more than the tag: Rust tags structs and enums as classes.
_NODE_KINDS: dict[str, int] = {
    "struct_item": _K.Struct, "union_item": _K.Struct, "struct_specifier": _K.Struct,
    "union_specifier": _K.Struct, "struct_declaration": _K.Struct,
    "enum_item": _K.Enum, "enum_specifier": _K.Enum, "enum_declaration": _K.Enum,
    "trait_item": _K.Interface, "trait_declaration": _K.Interface, "interface_declaration": _K.Interface,
    "mod_item": _K.Module, "module": _K.Module,
    "namespace_definition": _K.Namespace, "namespace_declaration": _K.Namespace,
    "file_scoped_namespace_declaration": _K.Namespace, "internal_module": _K.Namespace,
    "type_item": _K.TypeParameter, "type_alias_declaration": _K.TypeParameter,
    "alias_declaration": _K.TypeParameter, "type_alias": _K.TypeParameter,
    "type_alias_statement": _K.TypeParameter, "object_definition": _K.Object,
}
# Kinds whose functions are methods.
_CLASS_LIKE = frozenset({_K.Class, _K.Struct, _K.Interface, _K.Enum, _K.Object})
# Nodes whose `type` field tells what a typedef / type spec / declaration defines.
_TYPED_NODES = frozenset({"type_definition", "type_spec", "declaration"})
_C_DECLARATOR_WRAPPERS = frozenset({
    "pointer_declarator", "reference_declarator", "parenthesized_declarator", "attributed_declarator",
})
_C_FUNCTION_HOLDERS = frozenset({"function_definition", "declaration", "field_declaration"})
# `type X struct{}`, `const x = () => 1`: the keyword belongs to the range when it holds one definition.
_SINGLE_WRAPPERS = frozenset({"type_declaration", "const_declaration", "lexical_declaration", "variable_declaration"})
# Decorators, templates and `export` belong to the definition they wrap.
_OUTER_WRAPPERS = frozenset({"decorated_definition", "template_declaration", "export_statement"})

# Definitions the upstream tags queries miss. Each pattern is compiled on its own, so one that
# a newer grammar rejects costs only itself. `@scope.impl` names a container that is not a
# symbol itself (a Rust impl block).
_EXTRA_TAGS: dict[str, tuple[str, ...]] = {
    "python": ("(type_alias_statement left: (type (identifier) @name)) @definition.type",),
    "typescript": (
        "(type_alias_declaration name: (type_identifier) @name) @definition.type",
        "(enum_declaration name: (identifier) @name) @definition.enum",
        "(internal_module name: (_) @name) @definition.module",
    ),
    "go": (
        "(type_alias name: (type_identifier) @name) @definition.type",
        "(source_file (const_declaration (const_spec name: (identifier) @name) @definition.constant))",
    ),
    "rust": (
        "(const_item name: (identifier) @name) @definition.constant",
        "(static_item name: (identifier) @name) @definition.constant",
        "(impl_item type: (_) @name) @scope.impl",
    ),
    "java": (
        "(enum_declaration name: (identifier) @name) @definition.enum",
        "(record_declaration name: (identifier) @name) @definition.class",
    ),
    "cpp": (
        "(namespace_definition name: (namespace_identifier) @name) @definition.module",
        "(alias_declaration name: (type_identifier) @name) @definition.type",
    ),
    "csharp": (
        "(struct_declaration name: (identifier) @name) @definition.class",
        "(enum_declaration name: (identifier) @name) @definition.enum",
        "(record_declaration name: (identifier) @name) @definition.class",
        "(namespace_declaration name: (qualified_name) @name) @definition.module",
        "(file_scoped_namespace_declaration name: (_) @name) @definition.module",
    ),
    "php": ("(enum_declaration name: (name) @name) @definition.enum",),
}
_EXTRA_TAGS["tsx"] = _EXTRA_TAGS["typescript"]
# Attributes and decorators that grammars parse as siblings before the definition they belong
# to (`#[derive(Debug)]`, a decorator on a TypeScript method): a definition's range starts at
# the first of them that only whitespace separates from it. Python decorators, Java
# annotations, C# and PHP attributes are children of the definition already.
_ATTACHED: dict[str, str] = {
    "rust": "(attribute_item) @attached",
    "typescript": "(decorator) @attached",
    "tsx": "(decorator) @attached",
    "javascript": "(decorator) @attached",
}


@attrs.frozen
class Symbol:
    """One definition. Path-less: the index keeps the path once per file."""

    name: str
    kind: int  # a SymbolKind value
    container: str | None  # dotted names of the enclosing definitions, e.g. "Outer.Inner"
    range: Range  # the whole definition
    selection_range: Range  # its name


# ---------------------------------------------------------------------------------------
# extraction


def _text(source: bytes, node: tree_sitter.Node) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", "replace")


def _column(source: bytes, byte: int, column: int) -> int:
    """UTF-16 column of a byte offset whose byte column tree-sitter reports."""
    prefix = source[byte - column:byte]
    if prefix.isascii():
        return column
    return len(prefix.decode("utf-8", "replace").encode("utf-16-le")) // 2


def _range(source: bytes, start: int, end: int, start_point: tree_sitter.Point,
           end_point: tree_sitter.Point) -> Range:
    return (start_point[0], _column(source, start, start_point[1]),
            end_point[0], _column(source, end, end_point[1]))


_NodeKey = tuple[int, int, int]  # start byte, end byte, grammar symbol: one node of a tree


def _key(node: tree_sitter.Node) -> _NodeKey:
    return node.start_byte, node.end_byte, node.kind_id


@functools.cache
def _local_query(language: str) -> tree_sitter.Query | None:
    """Our own patterns, one pass: definitions the upstream query misses (_EXTRA_TAGS) and
    `@wrapper` nodes that may wrap a definition. Node.parent would walk down from the root
    for every definition, quadratic on deeply nested code; the wrapper captures do not."""
    grammar = languages.grammar(language)
    if grammar is None:
        return None
    patterns = []
    for pattern in _EXTRA_TAGS.get(language, ()):
        try:
            tree_sitter.Query(grammar, pattern)
            patterns.append(pattern)
        except Exception as exc:  # a grammar that renamed a node costs that pattern only
            log.warning("extra tags pattern for %s does not compile: %s", language, exc)
    if language in _ATTACHED:
        patterns.append(_ATTACHED[language])
    wrappers = _SINGLE_WRAPPERS | _OUTER_WRAPPERS
    if language in ("c", "cpp"):
        wrappers |= _C_DECLARATOR_WRAPPERS | _C_FUNCTION_HOLDERS
    present = [t for t in sorted(wrappers) if grammar.id_for_node_kind(t, True)]
    if present:
        patterns.append("[" + " ".join(f"({t})" for t in present) + "] @wrapper")
    return tree_sitter.Query(grammar, "\n".join(patterns)) if patterns else None


def _outer(node: tree_sitter.Node, parents: dict[_NodeKey, tree_sitter.Node]) -> tree_sitter.Node | None:
    """The node a definition's range should cover; None when the capture is no definition
    (a C function declarator inside a parameter list)."""
    if node.type == "function_declarator":
        parent = parents.get(_key(node))
        while parent is not None and parent.type in _C_DECLARATOR_WRAPPERS:
            parent = parents.get(_key(parent))
        if parent is None or parent.type not in _C_FUNCTION_HOLDERS:
            return None
        node = parent
    parent = parents.get(_key(node))
    if parent is not None and parent.type in _SINGLE_WRAPPERS and parent.named_child_count == 1:
        node, parent = parent, parents.get(_key(parent))
    if parent is not None and parent.type in _OUTER_WRAPPERS:
        return parent
    return node


def _kind(tag: str, node: tree_sitter.Node) -> int | None:
    """SymbolKind of a definition; None for a C/C++ forward reference (`union U u;`)."""
    kind = _NODE_KINDS.get(node.type)
    if node.type in ("enum_specifier", "struct_specifier", "union_specifier", "class_specifier"):
        if node.child_by_field_name("body") is None:
            return None
    elif node.type in _TYPED_NODES:
        inner = node.child_by_field_name("type")
        inner_type = inner.type if inner is not None else ""
        has_body = inner is not None and inner.child_by_field_name("body") is not None
        if inner_type in ("struct_specifier", "union_specifier", "class_specifier"):
            if has_body:
                kind = _K.Struct if inner_type != "class_specifier" else _K.Class
            elif node.type == "declaration":
                return None
        elif inner_type == "enum_specifier":
            if has_body:
                kind = _K.Enum
            elif node.type == "declaration":
                return None
        elif inner_type == "struct_type":
            kind = _K.Struct
        elif inner_type == "interface_type":
            kind = _K.Interface
    if kind is None:
        kind = _TAG_KINDS.get(tag, _K.Variable)
    return kind


def _type_name(text: str) -> str:
    """`*Session[T]`, `&Foo<'a>`, `a::B` -> `Session`, `Foo`, `a.B`."""
    text = text.lstrip("*&( ").split("<", 1)[0].split("[", 1)[0]
    return text.replace("::", ".").strip(". )") or text


def _implied_container(def_node: tree_sitter.Node, source: bytes) -> tuple[str, ...]:
    """Containers a definition names itself: a Go receiver, a C++ `Class::method`."""
    if def_node.type == "method_declaration":
        receiver = def_node.child_by_field_name("receiver")
        if receiver is not None:
            for param in receiver.named_children:
                rtype = param.child_by_field_name("type")
                if rtype is not None:
                    return (_type_name(_text(source, rtype)),)
    elif def_node.type == "function_declarator":
        declarator = def_node.child_by_field_name("declarator")
        if declarator is not None and declarator.type == "qualified_identifier":
            scope = declarator.child_by_field_name("scope")
            if scope is not None:
                return tuple(p for p in _type_name(_text(source, scope)).split(".") if p)
    return ()


@attrs.define
class _Def:
    start: int
    end: int
    name: str
    tag: str  # "" for a scope that is no symbol
    kind: int
    implied: tuple[str, ...]
    rng: Range | None = None
    sel: Range | None = None


def extract(tree: tree_sitter.Tree, source: bytes, language: str) -> list[Symbol]:
    """The definitions in a parsed file, in source order; [] when the language has no tags
    query or anything goes wrong (one odd file must not stop indexing)."""
    try:
        return _extract(tree, source, language)
    except Exception:
        log.exception("symbol extraction failed (%s)", language)
        return []


def _extract(tree: tree_sitter.Tree, source: bytes, language: str) -> list[Symbol]:
    query = languages.tags_query(language)
    if query is None:
        return []
    matches = tree_sitter.QueryCursor(query).matches(tree.root_node)
    parents: dict[_NodeKey, tree_sitter.Node] = {}
    attached: list[tree_sitter.Node] = []
    local = _local_query(language)
    if local is not None:
        for pattern, captures in tree_sitter.QueryCursor(local).matches(tree.root_node):
            wrapper = captures.get("wrapper")
            if wrapper:
                for child in wrapper[0].named_children:
                    parents[_key(child)] = wrapper[0]
            elif "attached" in captures:
                attached.append(captures["attached"][0])
            else:
                matches.append((pattern, captures))
    attached.sort(key=lambda n: n.end_byte)
    attached_ends = [n.end_byte for n in attached]
    defs: dict[tuple[int, int, int, int], _Def] = {}
    for _pattern, captures in matches:
        names = captures.get("name")
        if not names:
            continue
        name_node = names[0]
        for capture, nodes in captures.items():
            if capture.startswith("definition."):
                tag = capture[len("definition."):]
            elif capture.startswith("scope."):
                tag = ""
            else:
                continue
            node = nodes[0]
            key = (node.start_byte, node.end_byte, name_node.start_byte, name_node.end_byte)
            if key in defs:
                continue
            name = _text(source, name_node).strip()
            if not name:
                continue
            if not tag:
                defs[key] = _Def(node.start_byte, node.end_byte, _type_name(name), "", _K.Class, ())
                continue
            kind = _kind(tag, node)
            outer = _outer(node, parents)
            if kind is None or outer is None:
                continue
            start, start_point = outer.start_byte, outer.start_point
            i = bisect.bisect_right(attached_ends, start)
            while i > 0 and not source[attached_ends[i - 1]:start].strip():
                i -= 1
                start, start_point = attached[i].start_byte, attached[i].start_point
            d = _Def(start, outer.end_byte, name, tag, kind, _implied_container(node, source))
            d.sel = _range(source, name_node.start_byte, name_node.end_byte,
                           name_node.start_point, name_node.end_point)
            d.rng = _range(source, start, outer.end_byte, start_point, outer.end_point)
            if not (d.rng[:2] <= d.sel[:2] and d.sel[2:] <= d.rng[2:]):  # selection must lie inside
                d.rng = (*min(d.rng[:2], d.sel[:2]), *max(d.rng[2:], d.sel[2:]))
            defs[key] = d
            break
    return _nest(list(defs.values()), language)


def _nest(defs: list[_Def], language: str) -> list[Symbol]:
    """Containers and method-ness from range containment, with a stack: no recursion."""
    defs.sort(key=lambda d: (d.start, -d.end))
    stack: list[tuple[_Def, tuple[str, ...]]] = []  # (definition, its path including itself)
    out: list[Symbol] = []
    for d in defs:
        while stack and not (stack[-1][0].start <= d.start and d.end <= stack[-1][0].end
                             and (stack[-1][0].start, stack[-1][0].end) != (d.start, d.end)):
            stack.pop()
        parent = stack[-1][0] if stack else None
        path = (stack[-1][1] if stack else ()) + d.implied
        path = path[-MAX_CONTAINER_PARTS:]
        stack.append((d, (path + (d.name,))[-MAX_CONTAINER_PARTS:]))
        if not d.tag:
            continue
        kind = d.kind
        if d.tag in ("function", "method") and kind in (_K.Function, _K.Method) and parent is not None:
            if parent.kind in _CLASS_LIKE:
                kind = _K.Method
            elif language == "rust" and parent.kind == _K.Module:
                kind = _K.Function  # Rust's query tags every fn in a `mod { }` a method
        d.kind = kind
        assert d.rng is not None and d.sel is not None
        out.append(Symbol(d.name, int(kind), ".".join(path) or None, d.rng, d.sel))
    return out


# ---------------------------------------------------------------------------------------
# matching helpers
#
# Every name gets four 64-bit masks, so most names fail a query in vectorised code:
#   chars:    its lowercase characters (a-z, 0-9, _ own a bit; others share 27 hashed bits)
#   initials: the first characters of its words
#   pairs:    hashed adjacent character pairs
#   starts:   hashed (word start, next character of that word or a later word's start) pairs,
#             which the first two characters of any word-start match must form

_SEPARATORS = frozenset("_-.$:/ ")
_WORD_PAIR_LIMIT = 8  # names with more words get an all-ones `starts` mask
_ALL_BITS = (1 << 64) - 1
_CHAR_BITS: dict[str, int] = {c: 1 << i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz0123456789_")}


def _char_bit(c: str) -> int:
    bit = _CHAR_BITS.get(c)
    return bit if bit is not None else 1 << (37 + ord(c) % 27)


def _char_mask(text: str) -> int:
    mask = 0
    for c in set(text):
        mask |= _char_bit(c)
    return mask


def _pair_bit(a: str, b: str) -> int:
    return 1 << ((ord(a) * 31 + ord(b) * 7) & 63)


def segments(name: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of the words of an identifier: split at non-alphanumerics, lower->Upper,
    ACRONYM->Word (`HTTPRequest` -> HTTP, Request) and letter<->digit boundaries."""
    out: list[tuple[int, int]] = []
    start = -1
    n = len(name)
    for i, c in enumerate(name):
        if not c.isalnum():
            if start >= 0:
                out.append((start, i))
                start = -1
            continue
        if start < 0:
            start = i
            continue
        prev = name[i - 1]
        if ((c.isupper() and (prev.islower() or prev.isdigit()))
                or (c.isupper() and prev.isupper() and i + 1 < n and name[i + 1].islower())
                or c.isdigit() != prev.isdigit()):
            out.append((start, i))
            start = i
    if start >= 0:
        out.append((start, n))
    return tuple(out)


def _name_segments(name: str, lower: str) -> tuple[tuple[int, int], ...]:
    # Lowercasing a few non-ASCII letters changes the length; their case boundaries are lost.
    return segments(name) if len(lower) == len(name) else segments(lower)


def _name_info(name: str) -> tuple[int, int, int, int, str]:
    """(chars, initials, pairs, starts) masks and "word|word" form of one name; the
    reference for _names_info."""
    lower = name.lower()
    segs = _name_segments(name, lower)
    initials = 0
    starts = 0
    for s, e in segs:
        initials |= _char_bit(lower[s])
        if e - s >= 2:
            starts |= _pair_bit(lower[s], lower[s + 1])
    if len(segs) > _WORD_PAIR_LIMIT:
        starts = _ALL_BITS
    else:
        for j, (s, _) in enumerate(segs):
            for t, _ in segs[j + 1:]:
                starts |= _pair_bit(lower[s], lower[t])
    pairs = 0
    for a, b in zip(lower, lower[1:]):
        pairs |= _pair_bit(a, b)
    return _char_mask(lower), initials, pairs, starts, "|".join(lower[s:e] for s, e in segs)


def _ascii_table(pred) -> np.ndarray:
    return np.array([pred(chr(i)) if i else False for i in range(256)], dtype=bool)


_T_ALNUM = _ascii_table(lambda c: c.isascii() and c.isalnum())
_T_UPPER = _ascii_table(lambda c: c.isascii() and c.isupper())
_T_LOWER = _ascii_table(lambda c: c.isascii() and c.islower())
_T_DIGIT = _ascii_table(lambda c: c.isascii() and c.isdigit())
_T_TOLOWER = np.array([ord(chr(i).lower()) if i < 128 else i for i in range(256)], dtype=np.uint8)
_T_BITS = np.array([_char_bit(chr(i)) if 0 < i < 128 else 0 for i in range(256)], dtype=np.uint64)


def _pair_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.left_shift(np.uint64(1), (a.astype(np.uint64) * np.uint64(31) + b.astype(np.uint64) * np.uint64(7))
                         & np.uint64(63))


def _names_info(names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """_name_info for many names at once: vectorised for ASCII names, which are nearly all."""
    masks = tuple(np.zeros(len(names), dtype=np.uint64) for _ in range(4))
    words = [""] * len(names)
    fast = [i for i, nm in enumerate(names) if 0 < len(nm) <= 64 and nm.isascii()]
    fast_set = set(fast)
    for i, nm in enumerate(names):
        if i not in fast_set:
            *values, words[i] = _name_info(nm)
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


def _word_pieces(q: str, words: list[str]) -> int | None:
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


# Whether _word_pieces matches at all, as a regex over "word|word|word", which runs in C. It backtracks exponentially on adversarial input, so it only sees names whose
# words and the query's length allow few placements: comb(words + k, k) <= this budget (a
# worst case of about 0.1 ms per name).
_REGEX_BUDGET = 3000


@functools.lru_cache(maxsize=64)
def _regex_word_limit(k: int) -> int:
    """The most words a name may have for the word regex of a k-character query."""
    words = 0
    while math.comb(words + 1 + k, k) <= _REGEX_BUDGET:
        words += 1
    return words


@functools.lru_cache(maxsize=64)
def _word_regex(q: str) -> re.Pattern[str]:
    """Matches "word|word" forms that q matches by word starts (a prefilter: the ranking
    placement comes from _word_pieces)."""
    parts = [r"(?:[^|]*\|)*?", re.escape(q[0])]
    for c in q[1:]:
        parts += [r"([^|]*\|(?:[^|]*\|)*?)??", re.escape(c)]
    return re.compile("".join(parts))


@functools.lru_cache(maxsize=64)
def _subsequence_regex(q: str) -> re.Pattern[str]:
    """q's characters in order, leftmost, with a group per run skipped between them.
    Possessive runs never backtrack: linear time."""
    parts = [f"[^{re.escape(q[0])}]*+{re.escape(q[0])}"]
    for c in q[1:]:
        parts.append(f"([^{re.escape(c)}]*+){re.escape(c)}")
    return re.compile("".join(parts))


def _subsequence_gaps(q: str, lower: str) -> int | None:
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


def _parse_query(query: str) -> tuple[str, str, str] | None:
    """(name query lowercased, name query as typed, container query lowercased)."""
    q = "".join(query.split()).replace("::", ".")
    if not q:
        return None
    container, _, name = q.rpartition(".")
    container = container.strip(".").lower()
    if not name and not container:
        return None
    return name.lower(), name, container


def _score(tier: int, extra_len: int, gaps: int, exact_case: bool) -> float:
    """Monotone in tier: each tier owns a band of width 0.25, tier 1 highest."""
    return (4 - tier) / 4 + 0.2 / (1 + extra_len + gaps) + (0.04 if exact_case else 0.0)


# ---------------------------------------------------------------------------------------
# index

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
            self._container_mask[cid] = _char_mask(lower)
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
        chars, initials, pairs, starts, words = _names_info([s.name for s in new_syms])
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
        parsed = _parse_query(query)
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
                words_left = gaps // _LETTERS if tier == 3 else gaps
                ceiling = min(ceiling, _score(tier, length - len(q), words_left + cr, tier == 1 and case == 0))
                out.append((self._slot_path[slot], sym, ceiling))
            return out

    def _container_ranks(self, cq: str, n: int) -> np.ndarray:
        """Per slot: 0 container is cq or ends with `.cq`, 1 its last parts contain cq
        (`HTTPConnection` for `connection`), 2 fuzzy match, _NO_MATCH otherwise."""
        count = len(self._container_lower)
        by_container = np.full(count + 1, _NO_MATCH, dtype=np.int8)  # the last entry: no container
        if count:
            qm = np.uint64(_char_mask(cq))
            suffix = "." + cq
            parts = cq.count(".") + 1
            lowers = self._container_lower
            for cid in np.flatnonzero((self._container_mask[:count] & qm) == qm).tolist():
                lower = lowers[cid]
                if lower == cq or lower.endswith(suffix):
                    by_container[cid] = 0
                elif cq in ".".join(lower.rsplit(".", parts)[-parts:]):
                    by_container[cid] = 1
                elif _subsequence_gaps(cq, lower) is not None:
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
        words = "".join(c for c in q if c not in _SEPARATORS)
        tier3: list[_Hit] = []
        if words and len(words) <= MAX_WORD_QUERY:
            wm = np.uint64(_char_mask(words))
            cand = base & ((self._chars[:n] & wm) == wm)
            cand &= (self._initials[:n] & np.uint64(_char_bit(words[0]))) != 0
            cand_slots = np.flatnonzero(cand)
            if len(words) > 1:
                cand_slots = cand_slots[(self._starts[cand_slots] & np.uint64(_pair_bit(words[0], words[1]))) != 0]
                initials = self._initials[cand_slots]
                pairs = self._pairs[cand_slots]
                keep = np.ones(len(cand_slots), dtype=bool)
                for a, b in zip(words[1:8], words[2:9]):
                    keep &= ((pairs & np.uint64(_pair_bit(a, b))) != 0) | ((initials & np.uint64(_char_bit(b))) != 0)
                cand_slots = cand_slots[keep]
            tier3 = self._word_hits(cand_slots, words, crank, ranks, need, q)
            hits.extend(tier3[:need])
            need = limit - len(hits)
            if need <= 0:
                return hits
        matched = {h[-1] for h in tier3}
        qm = np.uint64(_char_mask(q))
        cand_slots = np.flatnonzero(base & ((self._chars[:n] & qm) == qm))

        def run_gaps(m: re.Match[str], slot: int) -> int | None:
            skipped = m.groups()  # "" where the query's characters are adjacent
            return None if slot in matched else len(skipped) - skipped.count("")

        tier4 = self._scan(cand_slots, 4, crank, ranks, need, q, self._lower, _subsequence_regex(q).match, run_gaps)
        hits.extend(tier4[:need])
        return hits

    def _word_hits(self, slots: np.ndarray, words: str, crank: np.ndarray | None, ranks: np.ndarray, need: int,
                   q: str) -> list[_Hit]:
        """Tier 3: names whose words start with successive pieces of the query."""
        def rank(m: object, slot: int) -> int | None:
            # Words left untouched, then query letters not on a word start: 0 is every word
            # of the name touched, each by one letter. Both fall as more words are touched.
            parts = self._words[slot].split("|")
            pieces = _word_pieces(words, parts)
            return None if pieces is None else (len(parts) - pieces) * _LETTERS + (len(words) - pieces)

        def search(form: str) -> int | None:
            return _word_pieces(words, form.split("|"))

        small = self._nwords[slots] <= _regex_word_limit(len(words))
        hits = self._scan(slots[small], 3, crank, ranks, need, q, self._words, _word_regex(words).match, rank)
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
