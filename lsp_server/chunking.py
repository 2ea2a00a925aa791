"""Cut source files into chunks along the syntax tree.

Every line of a file lands in exactly one chunk: imports and top-level statements
included, and a class is never indexed again beside its own methods. Definitions that
are too large are split at their children's boundaries; small neighbours are glued
together so the index does not fill with one-line chunks. Files without a grammar are
split by lines, preferring blank lines.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import time

import attrs
import tree_sitter

from . import languages
from .kinds import SymbolKind

log = logging.getLogger(__name__)

# all-MiniLM-L6-v2 reads 256 word pieces; code runs about 3-4 characters a piece, so at 800
# characters 23 % of the stdlib corpus's chunks were still cut off. 1200 scored lower in every
# mode on the retrieval benchmark; 600 (issue 16, with the signature signal) scores higher on
# both corpora's doc, identifier and name queries for 27 % more chunks. docs/BENCHMARKS.md
# has the numbers. An index keeps its chunks until their file changes.
DEFAULT_MAX_CHARS = 600
# A definition smaller than this may share a chunk with another definition.
SMALL_DEF_CHARS = 200
# Single lines can be huge (minified code); a chunk never stores more than this.
MAX_CONTENT_CHARS = 16_000
MAX_SPLIT_DEPTH = 64
PARSE_TIMEOUT_SECONDS = 5.0

# SymbolKind by keyword in a definition's node type, most specific first.
_K = SymbolKind
_KINDS: tuple[tuple[str, int], ...] = tuple((word, int(kind)) for word, kind in (
    ("constructor", _K.Constructor), ("method", _K.Method), ("interface", _K.Interface), ("trait", _K.Interface),
    ("protocol", _K.Interface), ("enum", _K.Enum), ("struct", _K.Struct), ("record", _K.Struct),
    ("union", _K.Struct), ("impl", _K.Class), ("class", _K.Class), ("object", _K.Object),
    ("namespace", _K.Namespace), ("module", _K.Module), ("mod_item", _K.Module), ("type_alias", _K.TypeParameter),
    ("type_item", _K.TypeParameter), ("type_declaration", _K.TypeParameter), ("function", _K.Function),
    ("func", _K.Function), ("fn", _K.Function), ("macro", _K.Function), ("singleton_method", _K.Method),
))
_DEF_TYPES = frozenset({
    # python
    "function_definition", "class_definition", "decorated_definition",
    # javascript / typescript
    "function_declaration", "generator_function_declaration", "class_declaration", "method_definition",
    "abstract_class_declaration", "interface_declaration", "type_alias_declaration", "enum_declaration",
    "module", "internal_module",
    # go
    "method_declaration", "type_declaration",
    # rust
    "function_item", "struct_item", "enum_item", "impl_item", "trait_item", "mod_item", "macro_definition",
    "union_item", "type_item",
    # java / c# / kotlin / scala
    "constructor_declaration", "record_declaration", "struct_declaration", "namespace_declaration",
    "annotation_type_declaration", "object_declaration",
    "object_definition", "trait_definition", "enum_definition",
    # c / c++
    "struct_specifier", "class_specifier", "union_specifier", "enum_specifier", "namespace_definition",
    "template_declaration",
    # ruby
    "method", "singleton_method", "class", "singleton_class",
    # php
    "trait_declaration",
    # lua
    "local_function", "function_definition_statement",
})
_TYPE_KINDS = frozenset({5, 11, 10, 23, 19})
_WRAPPERS = {"decorated_definition": "definition", "export_statement": "declaration",
             "template_declaration": None}


@attrs.frozen
class Chunk:
    path: str
    language: str
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    content: str
    symbol: str | None = None
    kind: int | None = None


@attrs.define
class _Unit:
    start: int  # 0-based row, inclusive
    end: int  # 0-based row, inclusive
    nodes: list[tree_sitter.Node]
    size: int = 0
    sealed: bool = False  # produced by splitting a larger node: never merged further
    symbol: str | None = None
    kind: int | None = None
    defs: int = 0  # substantial definitions inside


class ParseTimeout(Exception):
    """A file took longer than its parse time bound; it is split by lines instead."""


def parse(language: str, source: bytes, timeout: float = PARSE_TIMEOUT_SECONDS) -> tree_sitter.Tree | None:
    """Parse source with the language's grammar; None when there is no grammar.

    Parsing goes through a read callback because only then does tree-sitter offer a progress
    callback, which is how a pathological file is stopped at its time bound.
    """
    parser = languages.parser(language)
    if parser is None:
        return None
    deadline = time.monotonic() + timeout
    view = memoryview(source)
    handed: list[bytes] = []

    def read(offset: int, _point: tuple[int, int]) -> bytes:
        piece = bytes(view[offset:offset + 65_536])  # always a new object: see _drop_leaked
        handed.append(piece)
        return piece

    try:
        return parser.parse(read, progress_callback=lambda *_: time.monotonic() > deadline)
    except ValueError as exc:
        if time.monotonic() > deadline:
            raise ParseTimeout(f"parsing took longer than {timeout:g} s") from exc
        raise
    finally:
        _drop_leaked(handed)


def _drop_leaked(pieces: list[bytes]) -> None:
    """Give back the reference py-tree-sitter 0.26 keeps to every bytes a read callback returns.

    Without this every parse leaks the whole file (about 1.5 copies, as the parser re-reads),
    so a long-running server grows with every save. Only a piece that really holds one
    reference too many is released, so a fixed binding is left alone.
    """
    while pieces:
        piece = pieces.pop()
        # Here: `piece` and getrefcount's argument. One more is the binding's leak. Pieces of
        # 0 or 1 bytes are interpreter-wide singletons, shared with others: leave them.
        if len(piece) > 1 and sys.getrefcount(piece) == 3:
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(piece))


def _kind(node_type: str) -> int | None:
    for word, kind in _KINDS:
        if word in node_type:
            return kind
    return None


def _unwrap(node: tree_sitter.Node) -> tree_sitter.Node:
    """The definition inside decorators, exports and templates."""
    for _ in range(4):
        if node.type not in _WRAPPERS and node.type != "export_statement":
            return node
        field = _WRAPPERS.get(node.type)
        inner = node.child_by_field_name(field) if field else None
        if inner is None:
            inner = next((c for c in reversed(node.named_children) if c.type in _DEF_TYPES
                          or c.type in _WRAPPERS or c.type == "lexical_declaration"), None)
        if inner is None:
            return node
        node = inner
    return node


def _name_of(node: tree_sitter.Node) -> str | None:
    name = node.child_by_field_name("name")
    if name is None and node.type == "impl_item":
        name = node.child_by_field_name("type")
    if name is None and node.type == "lexical_declaration":
        # const handler = () => {...}
        decl = next((c for c in node.named_children if c.type == "variable_declarator"), None)
        value = decl.child_by_field_name("value") if decl else None
        if decl is not None and value is not None and value.type in ("arrow_function", "function_expression",
                                                                      "function"):
            name = decl.child_by_field_name("name")
    if name is None:
        # C/C++: the name hides in nested declarators.
        declarator = node.child_by_field_name("declarator")
        for _ in range(8):
            if declarator is None:
                break
            if declarator.type in ("identifier", "field_identifier", "qualified_identifier",
                                   "destructor_name", "operator_name", "type_identifier"):
                name = declarator
                break
            declarator = declarator.child_by_field_name("declarator") or next(
                (c for c in declarator.named_children if "identifier" in c.type), None)
    if name is None and node.type == "type_declaration":
        spec = next((c for c in node.named_children if c.type == "type_spec"), None)
        name = spec.child_by_field_name("name") if spec else None
    if name is None or name.text is None:
        return None
    text = name.text.decode("utf-8", "replace")
    return text if len(text) <= 200 else text[:200]


def _definition(node: tree_sitter.Node) -> tuple[str, int | None] | None:
    """(name, kind) when the node defines something worth naming a chunk after."""
    inner = _unwrap(node)
    if inner.type in _DEF_TYPES or inner.type == "lexical_declaration":
        name = _name_of(inner)
        if name:
            kind = _kind(inner.type)
            if inner.type == "lexical_declaration":
                kind = int(SymbolKind.Function)
            return name, kind
    return None


@attrs.frozen
class ChunkSizes:
    """The chunker's tuning knobs (docs/BENCHMARKS.md has what each value measured)."""

    max_chars: int = DEFAULT_MAX_CHARS
    # A definition at least this large keeps a chunk of its own instead of being merged.
    small_def_chars: int = SMALL_DEF_CHARS


DEFAULT_SIZES = ChunkSizes()


class _Chunker:
    def __init__(self, lines: list[str], sizes: ChunkSizes) -> None:
        self.lines = lines
        self.max_chars = sizes.max_chars
        self.small_def_chars = sizes.small_def_chars
        self.line_sizes = [len(line.strip()) + 1 for line in lines]

    def size(self, start: int, end: int) -> int:
        return sum(self.line_sizes[start:end + 1])

    def units(self, nodes: list[tree_sitter.Node], lo: int, hi: int) -> list[_Unit]:
        """Group sibling nodes into line ranges that tile [lo, hi] exactly."""
        units: list[_Unit] = []
        for node in nodes:
            s, e = node.start_point[0], node.end_point[0]
            if node.end_point[1] == 0 and e > s:
                e -= 1  # a node ending at column 0 ends on the previous line
            e = min(max(e, s), hi)
            if e < lo:
                continue
            if units and s <= units[-1].end:
                units[-1].end = max(units[-1].end, e)
                units[-1].nodes.append(node)
            else:
                start = units[-1].end + 1 if units else lo
                units.append(_Unit(start, max(e, start), [node]))
        if not units:
            return [_Unit(lo, hi, [])] if hi >= lo else []
        units[-1].end = hi
        return units

    def split(self, nodes: list[tree_sitter.Node], lo: int, hi: int, container: list[str],
              depth: int = 0, in_type: bool = False) -> list[_Unit]:
        out: list[_Unit] = []
        for unit in self.units(nodes, lo, hi):
            unit.size = self.size(unit.start, unit.end)
            definition = _definition(unit.nodes[0]) if len(unit.nodes) == 1 else None
            if definition is None and unit.nodes:
                definition = next((d for d in map(_definition, unit.nodes) if d), None)
            if definition:
                unit.symbol = ".".join([*container, definition[0]])
                is_method = in_type and definition[1] == SymbolKind.Function
                unit.kind = int(SymbolKind.Method) if is_method else definition[1]
                unit.defs = 1 if unit.size >= self.small_def_chars else 0
            elif container:
                unit.symbol = ".".join(container)
            if unit.size > self.max_chars:
                out.extend(self.split_large(unit, container, definition, depth, in_type))
            else:
                out.append(unit)
        return self.merge(out)

    def split_large(self, unit: _Unit, container: list[str], definition: tuple[str, int | None] | None,
                    depth: int, in_type: bool) -> list[_Unit]:
        # Through decorators and exports, so a split definition is not named twice.
        children = [c for n in unit.nodes for c in _unwrap(n).children]
        if depth >= MAX_SPLIT_DEPTH or not children or (
                len(unit.nodes) == 1 and unit.start == unit.end):
            return self.split_lines(unit.start, unit.end, unit.symbol, unit.kind)
        inner = [*container, definition[0]] if definition else container
        is_type = definition[1] in _TYPE_KINDS if definition else in_type
        parts = self.split(children, unit.start, unit.end, inner, depth + 1, is_type)
        if definition and parts and parts[0].kind is None:
            # The head of a split definition (its signature) carries the definition's own name.
            parts[0].symbol = unit.symbol
            parts[0].kind = unit.kind
        for part in parts:
            part.sealed = True
        return parts

    def split_lines(self, lo: int, hi: int, symbol: str | None, kind: int | None) -> list[_Unit]:
        """Line-based cuts, preferring blank lines, for text without a usable tree."""
        out: list[_Unit] = []
        start, size = lo, 0
        for row in range(lo, hi + 1):
            size += self.line_sizes[row]
            blank = not self.lines[row].strip()
            if row == hi or size >= self.max_chars or (blank and size >= self.max_chars * 0.6):
                out.append(_Unit(start, row, [], size=size, sealed=True, symbol=symbol, kind=kind))
                start, size = row + 1, 0
        return out

    def merge(self, units: list[_Unit]) -> list[_Unit]:
        """Glue small neighbours; never two substantial definitions into one chunk."""
        merged: list[_Unit] = []
        for unit in units:
            prev = merged[-1] if merged else None
            # A sealed unit is a piece of a split definition: only a preceding header,
            # comment or statement may join it, never the neighbouring definition.
            if (prev is not None and not prev.sealed and (not unit.sealed or prev.kind is None)
                    and prev.size + unit.size <= self.max_chars and prev.defs + unit.defs <= 1):
                prev.sealed = unit.sealed
                prev.end = unit.end
                prev.size += unit.size
                prev.nodes.extend(unit.nodes)
                if prev.kind is None or (unit.defs and not prev.defs):
                    prev.symbol, prev.kind = unit.symbol or prev.symbol, unit.kind
                prev.defs += unit.defs
            else:
                merged.append(unit)
        return merged


def chunk(path: str, text: str, language: str, tree: tree_sitter.Tree | None = None,
          sizes: ChunkSizes = DEFAULT_SIZES) -> list[Chunk]:
    """Chunks covering every line of the file once, in order."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    if not lines or not text.strip():
        return []
    chunker = _Chunker(lines, sizes)
    last = len(lines) - 1
    if tree is not None:
        root = tree.root_node
        units = chunker.split(list(root.children), 0, last, [])
    else:
        units = chunker.split_lines(0, last, None, None)
    chunks = []
    for unit in units:
        start, end = unit.start, unit.end
        # Blank edges would make the same code a different text when lines are inserted above it.
        while start < end and not lines[start].strip():
            start += 1
        while end > start and not lines[end].strip():
            end -= 1
        content = "\n".join(lines[start:end + 1])
        if not content.strip():
            continue
        if len(content) > MAX_CONTENT_CHARS:
            content = content[:MAX_CONTENT_CHARS]
        chunks.append(Chunk(path, language, start + 1, end + 1, content, unit.symbol, unit.kind))
    return chunks
