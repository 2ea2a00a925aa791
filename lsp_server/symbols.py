"""Symbols (functions, classes, ...) of a file, from its syntax tree.

Extraction runs each grammar's upstream ``tags.scm`` query over the syntax tree the chunker
already built, plus a few patterns of our own for definitions those queries miss (enums, type
aliases, constants, namespaces). Languages without a tags query yield no symbols.
The workspace-wide index over them is symbol_index.py; name matching, symbol_match.py.

Positions are 0-based; characters are counted in UTF-16 code units, as LSP expects by
default (tree-sitter reports bytes; lines that are pure ASCII are taken as they are).
"""

from __future__ import annotations

import bisect
import functools
import logging

import attrs
import tree_sitter

from . import languages
from .kinds import SymbolKind

log = logging.getLogger(__name__)

Range = tuple[int, int, int, int]  # start line, start character, end line, end character

# Bump when extraction changes: stored symbols from an older extractor are dropped.
# 2: ranges cover Rust attributes and TypeScript member decorators above a definition.
EXTRACTOR_VERSION = 2
# Containers keep their innermost parts only, so absurd nesting cannot cost quadratic memory.
MAX_CONTAINER_PARTS = 32
# Outlines deeper than this are flattened: clients and JSON encoders recurse on children.
MAX_OUTLINE_DEPTH = 64

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
