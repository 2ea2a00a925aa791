"""The retrieval-quality corpora and their two query sets (CodeSearchNet protocol).

Real code nobody here wrote. ``stdlib``: some Python stdlib packages of the running
interpreter and the JavaScript of express v4, fetched from the npm registry. ``rxjs``: the
TypeScript sources rxjs 7 ships in its npm package (``src/**/*.ts``, Apache-2.0), a second
corpus so a ranking change is not tuned to one set of projects. Every function's and class's
doc (Python docstring, JSDoc comment directly above a JS/TS function) is removed from the
copy, with line numbers kept by blanking its lines; its first sentence becomes a query whose
target is that definition. A second set asks for public functions by their name split into
words ("get content charset").

    .venv/bin/python -m bench.corpus [--corpus stdlib|rxjs] DEST   # build and print the query sets
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import attrs

from bench.common import copy_stdlib
from lsp_server import languages, tokens

STDLIB_PACKAGES = ["asyncio", "email", "http", "json", "logging", "concurrent", "urllib", "xml/etree",
                   "importlib"]
EXPRESS_SPEC = "express@4"
RXJS_SPEC = "rxjs@7"
CORPORA = ("stdlib", "rxjs")
MIN_QUERY_WORDS = 4
MIN_IDENTIFIER_WORDS = 2
MAX_QUERY_CHARS = 1000


@attrs.frozen
class Definition:
    path: str  # workspace-relative, posix
    name: str
    start_line: int  # 1-based, inclusive (decorators included)
    end_line: int
    language: str
    doc: str | None = None  # the removed doc, cleaned
    is_class: bool = False


@attrs.frozen
class Query:
    text: str
    path: str
    start_line: int
    end_line: int
    language: str
    name: str


@attrs.define
class Corpus:
    root: Path
    doc_queries: list[Query]
    identifier_queries: list[Query]
    files: int
    definitions: int
    stripped: int
    express_version: str | None
    source: str  # what the corpus is made of, for reports

    def describe(self) -> str:
        langs = Counter(q.language for q in self.doc_queries)
        ids = Counter(q.language for q in self.identifier_queries)
        def split(c: Counter) -> str:
            return ", ".join(f"{lang} {n}" for lang, n in sorted(c.items()))
        return (f"{self.files} files, {self.definitions} definitions, {self.stripped} docs removed; "
                f"doc queries {len(self.doc_queries)} ({split(langs)}), "
                f"identifier queries {len(self.identifier_queries)} ({split(ids)})")


# --- doc text --------------------------------------------------------------------------------

def first_sentence(doc: str) -> str:
    """The first sentence of the first paragraph, whitespace collapsed."""
    paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    text = " ".join(paragraph.split())
    match = re.search(r"^(.+?[.!?])(?=\s|$)", text)
    sentence = match.group(1) if match else text
    return sentence[:MAX_QUERY_CHARS].strip()


def _python_string_value(raw: str) -> str | None:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, bytes):
        return None
    return inspect.cleandoc(value) if isinstance(value, str) else None


def _jsdoc_text(comment: str) -> str:
    """The description of a /** ... */ comment: no stars, no @tags."""
    body = comment[3:-2] if comment.endswith("*/") else comment[3:]
    lines = []
    for line in body.splitlines():
        line = re.sub(r"^\s*\*? ?", "", line)
        if line.lstrip().startswith("@"):
            break
        lines.append(line)
    return "\n".join(lines).strip()


# --- Python ----------------------------------------------------------------------------------

def _rows(node) -> tuple[int, int]:
    """0-based first and last row, a node ending at column 0 ending on the previous row."""
    s, e = node.start_point[0], node.end_point[0]
    if node.end_point[1] == 0 and e > s:
        e -= 1
    return s, e


def python_definitions(source: bytes, path: str) -> tuple[list[Definition], list[tuple[int, int, bool]]]:
    """Definitions with their docstrings, and the docstring row spans to blank.

    A span is (first row, last row, body_only): a docstring that is a body's only statement
    becomes `pass` on its first line so the code still parses.
    """
    tree = languages.parser("python").parse(source)
    lines = source.decode("utf-8", "replace").split("\n")
    defs: list[Definition] = []
    spans: list[tuple[int, int, bool]] = []

    def visit(node) -> None:
        for child in node.named_children:
            outer = child
            inner = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
            if inner is not None and inner.type in ("function_definition", "class_definition"):
                name_node = inner.child_by_field_name("name")
                name = name_node.text.decode() if name_node is not None and name_node.text else ""
                s, e = _rows(outer)
                doc = None
                body = inner.child_by_field_name("body")
                statements = [c for c in body.named_children if c.type != "comment"] if body is not None else []
                first = statements[0] if statements else None
                if (first is not None and first.type == "expression_statement" and first.named_children
                        and first.named_children[0].type == "string" and len(first.named_children) == 1):
                    ds, de = _rows(first)
                    ds_col, de_col = first.start_point[1], first.end_point[1]
                    header_row = inner.child_by_field_name("name").start_point[0] if name_node else s
                    alone = (ds > header_row and not lines[ds][:ds_col].strip()
                             and not lines[first.end_point[0]][de_col:].strip())
                    value = _python_string_value(first.text.decode("utf-8", "replace")) if alone else None
                    if value is not None:
                        doc = value
                        statements = [c for c in body.named_children if c.type != "comment"]
                        spans.append((ds, de, len(statements) == 1))
                defs.append(Definition(path, name, s + 1, e + 1, "python", doc,
                                       inner.type == "class_definition"))
                if body is not None:
                    visit(body)
            elif child.type in ("block", "if_statement", "try_statement", "else_clause", "elif_clause",
                                "except_clause", "finally_clause", "with_statement", "for_statement",
                                "while_statement"):
                visit(child)

    visit(tree.root_node)
    return defs, spans


def blank_python(source: str, spans: list[tuple[int, int, bool]]) -> str:
    lines = source.split("\n")
    for s, e, body_only in spans:
        indent = re.match(r"\s*", lines[s]).group(0)
        for row in range(s, e + 1):
            lines[row] = ""
        if body_only:
            lines[s] = f"{indent}pass"
    return "\n".join(lines)


# --- JavaScript ------------------------------------------------------------------------------

_FUNCTIONS = ("function_expression", "function", "arrow_function", "generator_function")


def _js_function_name(node) -> tuple[str, object] | None:
    """(name, node) when a statement following a doc comment defines a function."""
    if node.type == "export_statement":
        inner = node.child_by_field_name("declaration") or next(
            (c for c in node.named_children if c.type != "comment"), None)
        return _js_function_name(inner) if inner is not None else None
    if node.type in ("function_declaration", "generator_function_declaration", "class_declaration",
                     "method_definition"):
        name = node.child_by_field_name("name")
        return (name.text.decode(), node) if name is not None else None
    if node.type == "pair":
        value, key = node.child_by_field_name("value"), node.child_by_field_name("key")
        if value is not None and value.type in _FUNCTIONS and key is not None:
            return key.text.decode().strip("'\""), node
        return None
    if node.type in ("lexical_declaration", "variable_declaration"):
        for decl in node.named_children:
            value = decl.child_by_field_name("value") if decl.type == "variable_declarator" else None
            if value is not None and value.type in _FUNCTIONS:
                return decl.child_by_field_name("name").text.decode(), node
        return None
    if node.type == "expression_statement":
        expr = node.named_children[0] if node.named_children else None
        if expr is None:
            return None
        if expr.type == "assignment_expression":
            right, left = expr.child_by_field_name("right"), expr.child_by_field_name("left")
            if right is not None and right.type in _FUNCTIONS and left is not None:
                prop = left.child_by_field_name("property") if left.type == "member_expression" else left
                if prop is not None and prop.type in ("property_identifier", "identifier"):
                    return prop.text.decode(), node
                own = right.child_by_field_name("name")
                return (own.text.decode(), node) if own is not None else None
        if expr.type == "call_expression":
            # defineGetter(req, 'host', function host() {...}): a named function argument.
            args = expr.child_by_field_name("arguments")
            for arg in (args.named_children if args is not None else []):
                if arg.type in _FUNCTIONS:
                    own = arg.child_by_field_name("name")
                    return (own.text.decode(), node) if own is not None else None
    return None


def javascript_definitions(source: bytes, path: str) -> tuple[list[Definition], list[tuple[int, int]]]:
    """Functions with the JSDoc directly above them (blank lines allowed), and the rows to blank."""
    tree = languages.parser("javascript").parse(source)
    defs: list[Definition] = []
    spans: list[tuple[int, int]] = []

    def visit(node) -> None:
        children = node.named_children
        for i, child in enumerate(children):
            if child.type == "comment":
                continue
            found = _js_function_name(child)
            if found is not None:
                name, node = found
                s, e = _rows(child)
                doc = None
                prev = children[i - 1] if i > 0 else None
                if prev is not None and prev.type == "comment" and prev.text.startswith(b"/**"):
                    cs, ce = _rows(prev)
                    between = source.decode("utf-8", "replace").split("\n")[ce + 1:s]
                    if not any(line.strip() for line in between) and prev.end_point[0] < s:
                        text = _jsdoc_text(prev.text.decode("utf-8", "replace"))
                        if text:
                            doc = text
                            spans.append((cs, ce))
                defs.append(Definition(path, name, s + 1, e + 1, "javascript", doc,
                                       getattr(node, "type", "") == "class_declaration"))
            visit(child)

    visit(tree.root_node)
    return defs, spans


# --- TypeScript ------------------------------------------------------------------------------

_TS_DECLARATIONS = ("function_signature", "abstract_class_declaration", "method_signature",
                    "abstract_method_signature", "interface_declaration", "type_alias_declaration",
                    "enum_declaration")
# Documented names that are not functions: doc queries, but no identifier query ("public functions").
_TS_TYPES = ("class_declaration", "abstract_class_declaration", "interface_declaration",
             "type_alias_declaration", "enum_declaration", "variable_declarator")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*$")


def _ts_function_name(node) -> tuple[str, object] | None:
    """Like _js_function_name, plus TypeScript's overload signatures, abstract classes and
    methods, class fields holding a function (`static create = (...) => ...`), and the
    documented interfaces, type aliases, enums and exported constants (rxjs documents its
    error classes and schedulers as `export const`)."""
    if node.type == "export_statement":
        inner = node.child_by_field_name("declaration") or next(
            (c for c in node.named_children if c.type != "comment"), None)
        if inner is not None and inner.type == "lexical_declaration" and _js_function_name(inner) is None:
            decl = next((c for c in inner.named_children if c.type == "variable_declarator"), None)
            name = decl.child_by_field_name("name") if decl is not None else None
            return (name.text.decode(), decl) if name is not None else None
        return _ts_function_name(inner) if inner is not None else None
    if node.type in _TS_DECLARATIONS:
        name = node.child_by_field_name("name")
        return (name.text.decode(), node) if name is not None else None
    if node.type == "public_field_definition":
        name, value = node.child_by_field_name("name"), node.child_by_field_name("value")
        if name is not None and value is not None and value.type in _FUNCTIONS:
            return name.text.decode(), node
        return None
    return _js_function_name(node)


def typescript_definitions(source: bytes, path: str) -> tuple[list[Definition], list[tuple[int, int]]]:
    """Functions, methods and classes with their JSDoc, and the rows to blank.

    Overloads (`function map(a): X;` ... `function map(a, b?) { ... }`) are one definition
    from the first signature to the implementation; its doc is the first JSDoc in or above
    the run that has a description (rxjs puts it above the first signature or above the
    implementation, and marks deprecated signatures with a tags-only JSDoc).
    """
    tree = languages.parser("typescript").parse(source)
    lines = source.decode("utf-8", "replace").split("\n")
    defs: list[Definition] = []
    spans: list[tuple[int, int]] = []

    def doc_above(children, i: int) -> tuple[str, int, int] | None:
        prev = children[i - 1] if i > 0 else None
        if prev is None or prev.type != "comment" or not prev.text.startswith(b"/**"):
            return None
        cs, ce = _rows(prev)
        start = _rows(children[i])[0]
        if any(line.strip() for line in lines[ce + 1:start]) or prev.end_point[0] >= start:
            return None
        text = _jsdoc_text(prev.text.decode("utf-8", "replace"))
        return (text, cs, ce) if text else None

    def visit(node) -> None:
        children = node.named_children
        i = 0
        while i < len(children):
            child = children[i]
            found = _ts_function_name(child) if child.type != "comment" else None
            if found is None:
                visit(child)
                i += 1
                continue
            name, inner = found
            run = [i]  # this definition's overloads: same-named declarations, comments between
            declarations = [inner]
            j = i + 1
            while j < len(children):
                nxt = children[j]
                if nxt.type != "comment":
                    other = _ts_function_name(nxt)
                    if other is None or other[0] != name:
                        break
                    run.append(j)
                    declarations.append(other[1])
                j += 1
            doc = next((d for d in (doc_above(children, k) for k in run) if d is not None), None)
            if doc is not None:
                spans.append((doc[1], doc[2]))
            if _IDENTIFIER.match(name):
                defs.append(Definition(path, name, _rows(child)[0] + 1, _rows(children[run[-1]])[1] + 1,
                                       "typescript", doc[0] if doc else None,
                                       getattr(inner, "type", "") in _TS_TYPES))
            for declaration in declarations:  # nested definitions, not the `export` wrapper again
                visit(declaration)
            i = run[-1] + 1

    visit(tree.root_node)
    return defs, spans


def blank_rows(source: str, spans: list[tuple[int, int]]) -> str:
    lines = source.split("\n")
    for s, e in spans:
        for row in range(s, e + 1):
            lines[row] = ""
    return "\n".join(lines)


# --- building --------------------------------------------------------------------------------

def fetch_npm(spec: str, dest: Path, wanted: Callable[[str], bool]) -> str:
    """The files of an npm package that `wanted` accepts (paths inside the package), from
    the registry with `npm pack`; returns the version."""
    package = spec.rsplit("@", 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", tmp],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"npm pack {spec} failed: {out.stderr.strip()[-500:]}")
        tgz = next(Path(tmp).glob(f"{package}-*.tgz"))
        version = tgz.name[len(package) + 1:-len(".tgz")]
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/")
                if member.isfile() and wanted(name):
                    target = dest / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fh = tar.extractfile(member)
                    assert fh is not None
                    target.write_bytes(fh.read())
    return version


def fetch_express(dest: Path) -> str:
    """express v4's own index.js and lib/**/*.js."""
    return fetch_npm(EXPRESS_SPEC, dest,
                     lambda name: name == "index.js" or (name.startswith("lib/") and name.endswith(".js")))


def fetch_rxjs(dest: Path) -> str:
    """rxjs 7's TypeScript sources, src/**/*.ts (its tests are not in the package)."""
    return fetch_npm(RXJS_SPEC, dest, lambda name: name.startswith("src/") and name.endswith(".ts")
                     and not name.endswith(".d.ts"))


def strip_and_collect(root: Path) -> tuple[list[Definition], int, int]:
    """Remove docs in place under root; every definition found, files seen, docs removed."""
    defs: list[Definition] = []
    files = stripped = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in (".py", ".js", ".ts"):
            continue
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        text = data.decode("utf-8", "replace")
        files += 1
        if path.suffix == ".py":
            found, spans = python_definitions(data, rel)
            new = blank_python(text, spans)
        else:
            find = javascript_definitions if path.suffix == ".js" else typescript_definitions
            found, js_spans = find(data, rel)
            spans = js_spans  # type: ignore[assignment]
            new = blank_rows(text, js_spans)
        assert new.count("\n") == text.count("\n"), rel
        path.write_text(new, encoding="utf-8")
        defs.extend(found)
        stripped += len(spans)
    return defs, files, stripped


def _unique(queries: list[Query]) -> list[Query]:
    """Queries whose text occurs once: a repeated text has no single right answer."""
    counts = Counter(q.text.lower() for q in queries)
    return [q for q in queries if counts[q.text.lower()] == 1]


def make_queries(defs: list[Definition]) -> tuple[list[Query], list[Query]]:
    doc_queries = []
    for d in defs:
        if d.doc:
            text = first_sentence(d.doc)
            if len(text.split()) >= MIN_QUERY_WORDS:
                doc_queries.append(Query(text, d.path, d.start_line, d.end_line, d.language, d.name))
    ident_queries = []
    for d in defs:
        if d.name.startswith("_") or d.is_class:
            continue  # private, or a class: the set asks for public functions
        words = tokens.split_identifier(d.name)
        if len(words) >= MIN_IDENTIFIER_WORDS:
            ident_queries.append(Query(" ".join(words), d.path, d.start_line, d.end_line, d.language, d.name))
    return _unique(doc_queries), _unique(ident_queries)


def name_queries(identifier_queries: list[Query]) -> list[Query]:
    """The identifier queries' functions asked by their name as typed (`get_content_charset`),
    the shape search.identifier_shaped answers with more weight on words."""
    return [attrs.evolve(q, text=q.name) for q in identifier_queries]


def build(dest: Path, packages: list[str] | None = None, javascript: bool = True) -> Corpus:
    """Copy, strip and collect queries. dest must not exist or be empty."""
    packages = packages if packages is not None else STDLIB_PACKAGES
    root = copy_stdlib(dest, packages)
    version = fetch_express(root / "express") if javascript else None
    defs, files, stripped = strip_and_collect(root)
    doc_q, ident_q = make_queries(defs)
    source = (f"stdlib ({', '.join(packages)}) of Python {sys.version.split()[0]}"
              + (f" and express {version} from npm" if version else ""))
    return Corpus(root, doc_q, ident_q, files, len(defs), stripped, version, source)


def build_rxjs(dest: Path) -> Corpus:
    """rxjs's src/ from npm, stripped and with its queries. dest must not exist or be empty."""
    dest.mkdir(parents=True, exist_ok=True)
    version = fetch_rxjs(dest / "rxjs")
    defs, files, stripped = strip_and_collect(dest)
    doc_q, ident_q = make_queries(defs)
    return Corpus(dest, doc_q, ident_q, files, len(defs), stripped, None,
                  f"rxjs {version} from npm (src/**/*.ts, TypeScript)")


def build_named(name: str, dest: Path) -> Corpus:
    """One of CORPORA by name."""
    return build(dest) if name == "stdlib" else build_rxjs(dest)


def main() -> None:
    args = sys.argv[1:]
    name = "stdlib"
    if args[:1] == ["--corpus"]:
        name, args = args[1], args[2:]
    dest = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="cc-corpus-"))
    if dest.exists():
        shutil.rmtree(dest)
    corpus = build_named(name, dest)
    print(f"workspace: {corpus.root}, {corpus.source}")
    print(corpus.describe())
    for q in corpus.doc_queries[:10] + corpus.identifier_queries[:10]:
        print(json.dumps(attrs.asdict(q)))


if __name__ == "__main__":
    main()
