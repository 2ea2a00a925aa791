"""Symbol extraction from tags queries, the documentSymbol outline, and the fuzzy SymbolIndex."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from lsp_server import languages, symbol_index, symbol_match, symbols
from lsp_server.symbol_index import SymbolIndex
from lsp_server.symbols import Symbol, extract
from lsp_server.wire import document_symbols

K = lsp.SymbolKind


def parse_extract(language: str, source: str | bytes) -> list[Symbol]:
    data = source.encode() if isinstance(source, str) else source
    tree = languages.parser(language).parse(data)
    return extract(tree, data, language)


def summary(syms: list[Symbol]) -> list[tuple[str, str, str | None]]:
    return [(s.name, K(s.kind).name, s.container) for s in syms]


def find(syms: list[Symbol], name: str) -> Symbol:
    found = [s for s in syms if s.name == name]
    assert len(found) == 1, (name, summary(syms))
    return found[0]


def assert_selections_name_the_symbols(source: str, syms: list[Symbol]) -> None:
    """For ASCII sources: the selection range spells the name and lies inside the range."""
    lines = source.split("\n")
    for s in syms:
        l0, c0, l1, c1 = s.selection_range
        assert l0 == l1, s
        assert lines[l0][c0:c1] == s.name, s
        assert s.range[:2] <= s.selection_range[:2] and s.selection_range[2:] <= s.range[2:], s


# ---------------------------------------------------------------------------------------
# extraction per language

PYTHON = '''X = 1
@decorator
class Outer:
    def get(self):
        def helper():
            pass
    class Inner:
        def m(self):
            pass
def top():
    pass
'''


def test_python_kinds_containers_and_ranges() -> None:
    syms = parse_extract("python", PYTHON)
    assert summary(syms) == [
        ("X", "Constant", None),
        ("Outer", "Class", None),
        ("get", "Method", "Outer"),  # tags.scm says function; inside a class it is a method
        ("helper", "Function", "Outer.get"),
        ("Inner", "Class", "Outer"),
        ("m", "Method", "Outer.Inner"),
        ("top", "Function", None),
    ]
    outer = find(syms, "Outer")
    assert outer.selection_range == (2, 6, 2, 11)
    assert outer.range == (1, 0, 8, 16)  # the decorator belongs to the definition
    assert find(syms, "get").selection_range == (3, 8, 3, 11)
    assert find(syms, "m").range == (7, 8, 8, 16)
    assert_selections_name_the_symbols(PYTHON, syms)


JAVASCRIPT = '''class Session {
  constructor() {}
  get(key) { return key; }
}
function helper() {}
const arrow = () => 1;
export function exported() {}
'''


def test_javascript() -> None:
    syms = parse_extract("javascript", JAVASCRIPT)
    assert summary(syms) == [
        ("Session", "Class", None),
        ("get", "Method", "Session"),  # the constructor is excluded by tags.scm
        ("helper", "Function", None),
        ("arrow", "Function", None),
        ("exported", "Function", None),
    ]
    assert find(syms, "get").selection_range == (2, 2, 2, 5)
    assert find(syms, "arrow").range == (5, 0, 5, 22)  # the whole `const` statement
    assert find(syms, "exported").range[:2] == (6, 0)  # `export` included
    assert_selections_name_the_symbols(JAVASCRIPT, syms)


TYPESCRIPT = '''interface Shape {
  area(): number;
}
abstract class Base {
  abstract run(): void;
}
type Id = string;
enum Color { Red }
namespace NS {
  export function inner() {}
}
class Impl {
  method() {}
}
'''


def test_typescript() -> None:
    syms = parse_extract("typescript", TYPESCRIPT)
    assert summary(syms) == [
        ("Shape", "Interface", None),
        ("area", "Method", "Shape"),
        ("Base", "Class", None),
        ("run", "Method", "Base"),
        ("Id", "TypeParameter", None),
        ("Color", "Enum", None),
        ("NS", "Namespace", None),
        ("inner", "Function", "NS"),
        ("Impl", "Class", None),
        ("method", "Method", "Impl"),
    ]
    assert find(syms, "run").selection_range == (4, 11, 4, 14)
    assert_selections_name_the_symbols(TYPESCRIPT, syms)
    assert summary(parse_extract("tsx", "function App() { return <div/>; }\n")) == [("App", "Function", None)]


GO = '''package p

type Session struct {
	x int
}
type Reader interface { Read() }
type Alias = int
const Max = 10
func (s *Session) Get(k string) string { return k }
func New() *Session { return nil }
'''


def test_go() -> None:
    syms = parse_extract("go", GO)
    assert summary(syms) == [
        ("Session", "Struct", None),
        ("Reader", "Interface", None),
        ("Alias", "TypeParameter", None),
        ("Max", "Constant", None),
        ("Get", "Method", "Session"),  # the receiver type is the container
        ("New", "Function", None),
    ]
    assert find(syms, "Session").range == (2, 0, 4, 1)  # `type` keyword included
    assert find(syms, "Session").selection_range == (2, 5, 2, 12)
    assert find(syms, "Get").selection_range == (8, 18, 8, 21)
    assert_selections_name_the_symbols(GO, syms)


RUST = '''struct Point { x: i32 }
enum Dir { Up }
trait Shape { fn area(&self) -> f64; }
impl Point {
    fn new() -> Self { Point { x: 0 } }
}
impl<T> Shape for Wrapper<T> {
    fn area(&self) -> f64 { 0.0 }
}
mod util {
    fn helper() {}
}
type Alias = i32;
const MAX: i32 = 1;
macro_rules! my_macro { () => {} }
fn main() {}
'''


def test_rust() -> None:
    syms = parse_extract("rust", RUST)
    assert summary(syms) == [
        ("Point", "Struct", None),  # tags.scm says class; the node says struct
        ("Dir", "Enum", None),
        ("Shape", "Interface", None),
        ("new", "Method", "Point"),  # matched by two patterns, reported once; impl names the container
        ("area", "Method", "Wrapper"),
        ("util", "Module", None),
        ("helper", "Function", "util"),  # tags.scm calls every fn in a block a method
        ("Alias", "TypeParameter", None),
        ("MAX", "Constant", None),
        ("my_macro", "Function", None),
        ("main", "Function", None),
    ]
    assert find(syms, "new").selection_range == (4, 7, 4, 10)
    assert_selections_name_the_symbols(RUST, syms)


JAVA = '''package p;
public class Session {
  public String get(String k) { return k; }
  static class Inner { void m() {} }
}
interface Shape { double area(); }
enum Color { RED; void paint() {} }
record Pair(int a, int b) {}
'''


def test_java() -> None:
    syms = parse_extract("java", JAVA)
    assert summary(syms) == [
        ("Session", "Class", None),
        ("get", "Method", "Session"),
        ("Inner", "Class", "Session"),
        ("m", "Method", "Session.Inner"),
        ("Shape", "Interface", None),
        ("area", "Method", "Shape"),
        ("Color", "Enum", None),
        ("paint", "Method", "Color"),
        ("Pair", "Class", None),
    ]
    assert find(syms, "get").selection_range == (2, 16, 2, 19)
    assert find(syms, "Session").range == (1, 0, 4, 1)
    assert_selections_name_the_symbols(JAVA, syms)


C = '''struct Point { int x; };
typedef struct { int y; } Anon;
typedef int myint;
enum Color { RED };
union U u;
int add(int a, int b) { return a + b; }
int proto(int x);
void sort(int cmp(int));
static int *ptr_ret(void) { return 0; }
'''


def test_c() -> None:
    syms = parse_extract("c", C)
    assert summary(syms) == [
        ("Point", "Struct", None),
        ("Anon", "Struct", None),  # a typedef of a struct body
        ("myint", "TypeParameter", None),
        ("Color", "Enum", None),
        # `union U u;` only uses U; the parameter `cmp` is no definition
        ("add", "Function", None),
        ("proto", "Function", None),
        ("sort", "Function", None),
        ("ptr_ret", "Function", None),
    ]
    assert find(syms, "add").range == (5, 0, 5, 39)  # the whole definition, not the declarator
    assert find(syms, "add").selection_range == (5, 4, 5, 7)
    assert find(syms, "ptr_ret").selection_range == (8, 12, 8, 19)
    assert_selections_name_the_symbols(C, syms)


CPP = '''namespace ns {
class Session {
 public:
  int get(int k) { return k; }
  void put(int v);
};
void Session::put(int v) {}
using Id = int;
}
template <typename T> class Box { T value() { return T(); } };
'''


def test_cpp() -> None:
    syms = parse_extract("cpp", CPP)
    assert summary(syms) == [
        ("ns", "Namespace", None),
        ("Session", "Class", "ns"),
        ("get", "Method", "ns.Session"),
        ("put", "Method", "ns.Session"),
        ("put", "Method", "ns.Session"),  # out of line: `Session::` names the container
        ("Id", "TypeParameter", "ns"),
        ("Box", "Class", None),
        ("value", "Method", "Box"),
    ]
    assert find(syms, "Box").range == (9, 0, 9, 62)  # `template <...>` included
    assert [s.selection_range for s in syms if s.name == "put"] == [(4, 7, 4, 10), (6, 14, 6, 17)]
    assert_selections_name_the_symbols(CPP, syms)


CSHARP = '''namespace App.Core {
  public class Session {
    public string Get(string k) { return k; }
  }
  interface IShape { double Area(); }
  struct Point { }
  enum Color { Red }
}
'''


def test_csharp() -> None:
    syms = parse_extract("csharp", CSHARP)
    assert summary(syms) == [
        ("App.Core", "Namespace", None),
        ("Session", "Class", "App.Core"),
        ("Get", "Method", "App.Core.Session"),
        ("IShape", "Interface", "App.Core"),
        ("Area", "Method", "App.Core.IShape"),
        ("Point", "Struct", "App.Core"),
        ("Color", "Enum", "App.Core"),
    ]
    assert find(syms, "Get").selection_range == (2, 18, 2, 21)
    assert_selections_name_the_symbols(CSHARP, syms)


RUBY = '''module Net
  class Session
    def get(k)
      k
    end
    def self.create; end
  end
end
'''


def test_ruby() -> None:
    syms = parse_extract("ruby", RUBY)
    assert summary(syms) == [
        ("Net", "Module", None),
        ("Session", "Class", "Net"),
        ("get", "Method", "Net.Session"),
        ("create", "Method", "Net.Session"),
    ]
    assert find(syms, "get").range == (2, 4, 4, 7)
    assert find(syms, "create").selection_range == (5, 13, 5, 19)
    assert_selections_name_the_symbols(RUBY, syms)


PHP = '''<?php
namespace App;
interface Shape { public function area(); }
trait Greets { public function hi() {} }
class Session {
  public function get($k) { return $k; }
}
enum Suit { case Hearts; }
function helper() {}
'''


def test_php() -> None:
    syms = parse_extract("php", PHP)
    assert summary(syms) == [
        ("App", "Namespace", None),
        ("Shape", "Interface", None),
        ("area", "Method", "Shape"),
        ("Greets", "Interface", None),  # LSP has no trait kind
        ("hi", "Method", "Greets"),
        ("Session", "Class", None),
        ("get", "Method", "Session"),  # tags.scm says function
        ("Suit", "Enum", None),
        ("helper", "Function", None),
    ]
    assert find(syms, "get").selection_range == (5, 18, 5, 21)
    assert_selections_name_the_symbols(PHP, syms)


@pytest.mark.parametrize(("language", "source"), [
    ("kotlin", "class A { fun b() {} }\nfun main() {}\n"),
    ("bash", "f() { echo hi; }\nfunction g { :; }\n"),
])
def test_languages_without_tags_query_yield_nothing(language: str, source: str) -> None:
    assert languages.parser(language) is not None  # parsed fine, just no tags.scm to read
    assert languages.tags_query(language) is None
    assert parse_extract(language, source) == []


def test_utf16_columns() -> None:
    source = 'const s = "é😀"; function foo() {}\n'
    (foo,) = parse_extract("javascript", source)
    # UTF-16: `const s = "` 11 + é 1 + 😀 2 + `"; function ` 12 = 26 (bytes would say 29)
    assert foo.selection_range == (0, 26, 0, 29)
    assert foo.range == (0, 17, 0, 34)
    (cls,) = parse_extract("python", "# ü\nclass Ünïcode:\n    pass\n")
    assert cls.name == "Ünïcode"
    assert cls.selection_range == (1, 6, 1, 13)


def test_extract_never_raises(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = bytes(range(256)) * 8 + b"def (((( class :\n\x00 fn {{{"
    for language in ("python", "rust", "c", "cpp", "php", "ruby"):
        assert isinstance(parse_extract(language, garbage), list)
    assert extract(languages.parser("python").parse(b"def f(): pass\n"), b"def f(): pass\n", "cobol") == []

    def boom(*args: object) -> None:
        raise RuntimeError("odd tree")

    monkeypatch.setattr(symbols, "_nest", boom)
    with caplog.at_level(logging.ERROR, logger="lsp_server.symbols"):
        assert parse_extract("python", "def f(): pass\n") == []
    assert "symbol extraction failed" in caplog.text


def test_deep_nesting_without_recursion() -> None:
    depth = 5000
    source = "".join(f"function f{i}() {{\n" for i in range(depth)) + "}\n" * depth
    started = time.perf_counter()
    syms = parse_extract("javascript", source)
    outline = document_symbols(syms)
    assert time.perf_counter() - started < 10
    assert len(syms) == depth
    deepest = syms[-1]
    assert deepest.name == f"f{depth - 1}"
    parts = deepest.container.split(".")
    assert len(parts) == symbols.MAX_CONTAINER_PARTS and parts[-1] == f"f{depth - 2}"
    assert len(outline) == 1
    levels, node = 1, outline[0]
    while node.get("children"):
        assert len(node["children"]) <= depth
        node = node["children"][-1]
        levels += 1
    assert levels == symbols.MAX_OUTLINE_DEPTH  # deeper symbols are flattened into the last level
    deep_python = "x = " + "[" * depth + "]" * depth + "\n"
    assert summary(parse_extract("python", deep_python)) == [("x", "Constant", None)]


# ---------------------------------------------------------------------------------------
# outline


def test_document_symbols_hierarchy() -> None:
    syms = parse_extract("python", PYTHON)
    outline = document_symbols(list(reversed(syms)))  # input order does not matter
    assert [d["name"] for d in outline] == ["X", "Outer", "top"]
    outer = outline[1]
    assert outer["kind"] == K.Class
    assert outer["range"] == {"start": {"line": 1, "character": 0}, "end": {"line": 8, "character": 16}}
    assert outer["selectionRange"] == {"start": {"line": 2, "character": 6}, "end": {"line": 2, "character": 11}}
    assert [c["name"] for c in outer["children"]] == ["get", "Inner"]
    get, inner = outer["children"]
    assert get["kind"] == K.Method and [c["name"] for c in get["children"]] == ["helper"]
    assert [c["name"] for c in inner["children"]] == ["m"] and "children" not in inner["children"][0]
    assert "children" not in outline[0]
    assert document_symbols([]) == []


def test_document_symbols_same_range_are_siblings() -> None:
    a = Symbol("a", K.Function, None, (0, 0, 0, 20), (0, 4, 0, 5))
    b = Symbol("b", K.Function, None, (0, 0, 0, 20), (0, 10, 0, 11))
    assert [d["name"] for d in document_symbols([a, b])] == ["a", "b"]


# ---------------------------------------------------------------------------------------
# matching


def sym(name: str, container: str | None = None, kind: int = K.Function, line: int = 0) -> Symbol:
    return Symbol(name, kind, container, (line, 0, line, 10), (line, 0, line, len(name)))


@pytest.fixture
def index(tmp_path: Path) -> SymbolIndex:
    idx = SymbolIndex(tmp_path / "state.db")
    yield idx
    idx.close()


def names(results: list[tuple[str, Symbol, float]]) -> list[str]:
    return [s.name for _, s, _ in results]


def test_segments() -> None:
    def words(name: str) -> list[str]:
        return [name[a:b] for a, b in symbol_match.segments(name)]

    assert words("handle_request") == ["handle", "request"]
    assert words("HTTPRequest") == ["HTTP", "Request"]
    assert words("getContentSummary") == ["get", "Content", "Summary"]
    assert words("__init__") == ["init"]
    assert words("md5sum") == ["md", "5", "sum"]
    assert words("base64-encode.v2") == ["base", "64", "encode", "v", "2"]


def test_tiers_exact_prefix_word_start_subsequence(index: SymbolIndex) -> None:
    index.replace_file("a.py", [sym("prerequisite"), sym("handle_request"), sym("request"), sym("Req"),
                                sym("req"), sym("unrelated")])
    results = index.search("req")
    assert names(results) == ["req", "Req", "request", "handle_request", "prerequisite"]
    scores = [score for _, _, score in results]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert names(index.search("Req"))[:2] == ["Req", "req"]  # exact case first


def test_within_tier_shorter_names_first_then_path(index: SymbolIndex) -> None:
    index.replace_file("b.py", [sym("get_value_long"), sym("get_value")])
    index.replace_file("a.py", [sym("get_value")])
    results = index.search("get_v")
    assert [(p, s.name) for p, s, _ in results] == [("a.py", "get_value"), ("b.py", "get_value"),
                                                     ("b.py", "get_value_long")]


def test_word_start_abbreviations(index: SymbolIndex) -> None:
    index.replace_file("m.py", [sym("handle_request"), sym("HTTPRequest"), sym("thread"), sym("hour"),
                                sym("get_content_summary"), sym("geocaches"), sym("gadgets_c_s_extra"),
                                sym("getConSum"), sym("gc_s_x")])
    assert set(names(index.search("hr"))[:2]) == {"handle_request", "HTTPRequest"}
    assert names(index.search("hr"))[2:] == ["hour", "thread"]  # plain subsequences after
    gcs = names(index.search("gcs"))
    assert gcs.index("get_content_summary") < gcs.index("geocaches")
    # every word touched beats a shorter name with words left over; then every letter on a
    # word start beats letters inside a word; only then is the shorter name first
    assert gcs.index("get_content_summary") < gcs.index("gadgets_c_s_extra") < gcs.index("gc_s_x")
    assert names(index.search("getconsum"))[:2] == ["getConSum", "get_content_summary"]
    index.replace_file("t.py", [sym("test_Awaitable"), sym("test_east_asian_width"), sym("TestP"),
                                sym("TestEntryPoints")])
    assert names(index.search("teaw"))[0] == "test_east_asian_width"  # te|aw touches fewer words
    assert names(index.search("tep"))[0] == "TestEntryPoints"
    # Scores follow that order, so a client (or the server merging folders) sorting by score keeps it.
    scores = [score for _, _, score in index.search("gcs")]
    assert scores == sorted(scores, reverse=True)


def test_container_filters(index: SymbolIndex) -> None:
    index.replace_file("s.py", [
        sym("Session", kind=K.Class), sym("get", "Session"), sym("get_all", "Session"), sym("get", "Other"),
        sym("getter", "http.Session"), sym("get", "ns.Session"), sym("get", "SessionPool"),
        sym("get", "test_session.Mock"), sym("get", "SecureStorageSyncIONode"), sym("get", None),
    ])
    results = index.search("Session.get")
    assert [(s.container, s.name) for _, s, _ in results] == [
        # exact names: container `Session` or `*.Session`, then containing it, then fuzzy
        ("Session", "get"), ("ns.Session", "get"), ("SessionPool", "get"),
        ("test_session.Mock", "get"), ("SecureStorageSyncIONode", "get"),  # same rank: file order
        ("http.Session", "getter"), ("Session", "get_all"),  # prefixes, shorter first
    ]
    assert [(s.container, s.name) for _, s, _ in index.search("ns::Session::get")] == [("ns.Session", "get")]
    assert [s.container for _, s, _ in index.search("sess.get")][:3] == ["Session", "ns.Session", "SessionPool"]
    assert [s.container for _, s, _ in index.search("Pool.get")] == ["SessionPool"]
    members = index.search("Session.")
    assert {s.name for _, s, _ in members} == {"get", "get_all", "getter"}


def test_empty_queries_and_limit(index: SymbolIndex) -> None:
    index.replace_file("a.py", [sym(f"item{i}") for i in range(300)])
    for query in ("", "   ", ".", "::", "\t\n"):
        assert index.search(query) == []
    assert len(index.search("item", limit=10)) == 10
    assert len(index.search("item", limit=1000)) == symbol_index.MAX_RESULTS
    assert index.search("item", limit=0) == []
    assert names(index.search("item", limit=3)) == ["item0", "item1", "item2"]
    assert names(index.search("zzz")) == []


def test_non_ascii_names(index: SymbolIndex) -> None:
    index.replace_file("u.py", [sym("Straße"), sym("größe_berechnen"), sym("İstanbul")])
    assert names(index.search("STRASSE")) == []  # case-insensitive by str.lower, not casefold
    assert names(index.search("straße")) == ["Straße"]
    assert names(index.search("gb")) == ["größe_berechnen"]
    # 'İ'.lower() is 'i' plus a combining dot: a prefix match needs both; without it the dot
    # separates words "i" and "stanbul", a word-start match
    assert names(index.search("i̇stan")) == ["İstanbul"]
    ((_, _, score),) = index.search("istanbul")
    assert 0.25 <= score < 0.5


def test_vectorised_masks_match_reference() -> None:
    sample = ["HTTPRequest", "get_content_summary", "md5sum", "__init__", "a", "_", "X1Y2", "ÄpfelBaum",
              "İstanbul_x", "a" * 70, "a_b_c_d_e_f_g_h_i_j", "ABCDef", "x" * 64, "q-r.s$t"]
    vec = symbol_match.names_info(sample)
    for i, name in enumerate(sample):
        assert symbol_match.name_info(name) == (int(vec[0][i]), int(vec[1][i]), int(vec[2][i]), int(vec[3][i]),
                                            vec[4][i]), name


def test_adversarial_names_stay_fast(index: SymbolIndex) -> None:
    words = ["b"] + ["aaaaaa"] * 40
    started = time.perf_counter()
    assert symbol_match.word_pieces("a" * 30 + "b", words) is None
    index.replace_file("evil.py", [sym("_".join(words)), sym("_".join(["b"] + ["aaaaaa"] * 8))])
    assert index.search("a" * 30 + "b") == []
    assert index.search("aaaaaaab") == []
    assert time.perf_counter() - started < 2


# ---------------------------------------------------------------------------------------
# index maintenance and persistence


def test_replace_and_remove_update_results(index: SymbolIndex) -> None:
    index.replace_file("a.py", [sym("alpha"), sym("beta")])
    index.replace_file("b.py", [sym("alpha_two")])
    assert len(index) == 3 and index.files() == {"a.py", "b.py"}
    assert [p for p, _, _ in index.search("alpha")] == ["a.py", "b.py"]
    index.replace_file("a.py", [sym("gamma")])
    assert names(index.search("alpha")) == ["alpha_two"]
    assert names(index.search("gamma")) == ["gamma"]
    assert names(index.search("beta")) == []
    assert len(index) == 2
    index.remove_file("b.py")
    assert names(index.search("alpha")) == [] and index.files() == {"a.py"}
    index.replace_file("empty.py", [])
    assert index.files() == {"a.py", "empty.py"} and index.symbols_in("empty.py") == []
    index.clear()
    assert len(index) == 0 and index.files() == set() and index.search("gamma") == []


def test_persistence_without_reparsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "state.db"
    first = SymbolIndex(db)
    py = parse_extract("python", PYTHON)
    rust = parse_extract("rust", RUST)
    first.replace_file("pkg/mod.py", py)
    first.replace_file("lib.rs", rust)
    first.replace_file("gone.py", [sym("gone")])
    first.remove_file("gone.py")
    first.close()

    def no_parsing(*args: object) -> None:
        raise AssertionError("re-parsed")

    monkeypatch.setattr(symbols, "extract", no_parsing)
    monkeypatch.setattr(languages, "parser", no_parsing)
    second = SymbolIndex(db)
    assert second.files() == {"pkg/mod.py", "lib.rs"}
    assert second.symbols_in("pkg/mod.py") == py
    assert second.symbols_in("lib.rs") == rust
    assert len(second) == len(py) + len(rust)
    assert [(p, s.container) for p, s, _ in second.search("Outer.get")] == [("pkg/mod.py", "Outer")]
    assert names(second.search("gone")) == []
    assert not second.needs_rebuild
    second.close()


def test_other_extractor_version_is_dropped(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    first = SymbolIndex(db)
    first.replace_file("a.py", [sym("alpha")])
    first.close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE symbol_meta SET value = 'old' WHERE key = 'version'")
    second = SymbolIndex(db)
    assert second.needs_rebuild and len(second) == 0 and second.files() == set()
    second.close()
    third = SymbolIndex(db)
    assert not third.needs_rebuild
    third.close()


def test_damaged_database_raises_for_the_owner_to_recreate(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError) as raised:
        SymbolIndex(db)
    assert raised.value.sqlite_errorname == "SQLITE_NOTADB"


def test_failed_writes_keep_memory_current(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    idx = SymbolIndex(tmp_path / "state.db")
    idx.replace_file("a.py", [sym("alpha")])
    idx._db.close()  # every later write fails
    with caplog.at_level(logging.WARNING, logger="lsp_server.symbols"):
        idx.replace_file("b.py", [sym("beta")])
        idx.remove_file("a.py")
    assert "write failed" in caplog.text
    assert names(idx.search("beta")) == ["beta"] and names(idx.search("alpha")) == []
    reopened = SymbolIndex(tmp_path / "state.db")
    assert reopened.files() == {"a.py"}  # what was committed before the failure
    reopened.close()


def test_incremental_edits_match_brute_force(index: SymbolIndex) -> None:
    """Many edits exercise slot reuse and the sorted/delta split against a plain model."""
    rng = random.Random(4)
    vocabulary = [f"{a}_{b}" for a in ("get", "set", "make", "run", "handle") for b in ("item", "value", "x", "req")]
    model: dict[str, list[str]] = {}
    most_alive = 0
    for step in range(3000):
        path = f"f{rng.randrange(400)}.py"
        if rng.random() < 0.2:
            index.remove_file(path)
            model.pop(path, None)
        else:
            chosen = [rng.choice(vocabulary) + str(rng.randrange(3)) for _ in range(rng.randrange(6))]
            index.replace_file(path, [sym(n, line=i) for i, n in enumerate(chosen)])
            model[path] = chosen
        most_alive = max(most_alive, sum(map(len, model.values())))
        if step % 500 == 499:
            assert len(index) == sum(map(len, model.values()))
            for query in ("get_item0", "run_", "handle"):
                expected = sorted((p, n) for p, ns in model.items() for n in ns if n.startswith(query))
                got = sorted((p, s.name) for p, s, _ in index.search(query) if s.name.startswith(query))
                assert got == expected[:symbol_index.MAX_RESULTS] or len(expected) > symbol_index.MAX_RESULTS
    assert index.files() == set(model)
    # freed slots are reused once the sorted order stops listing them: memory follows the live count
    assert len(index._syms) <= most_alive + 1100
    for path, chosen in model.items():
        assert [s.name for s in index.symbols_in(path)] == chosen


def test_concurrent_writes_and_searches(index: SymbolIndex) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(300):
                index.replace_file(f"w{i % 50}.py", [sym(f"written_{i}"), sym("shared_name")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        for _, s, _ in index.search("shared"):
            assert s.name == "shared_name"
        index.search("wr")
    thread.join()
    assert not errors
    assert len(index.search("shared_name")) == 50


# ---------------------------------------------------------------------------------------
# decorators, annotations and attributes (issue 18, item 3)

DECORATED = [
    ("python", "class A:\n    @classmethod\n    @functools.lru_cache(maxsize=None)\n    def from_rows(cls):\n"
               "        pass\n", "from_rows", (1, 4)),
    ("java", "class A {\n    @Override\n    @SuppressWarnings(\"x\")\n    public String describe() { return \"\"; }\n}\n",
     "describe", (1, 4)),
    ("csharp", "class A {\n    [Obsolete(\"x\")]\n    [Pure]\n    public void Archive() {}\n}\n", "Archive", (1, 4)),
    ("rust", "/// docs stay out\n#[derive(Debug)]\n#[serde(rename = \"x\")]\npub struct Entry { x: i32 }\n",
     "Entry", (1, 0)),
    ("rust", "impl A {\n    #[inline]\n    pub fn settle() {}\n}\n", "settle", (1, 4)),
    ("typescript", "class A {\n  @Input() name: string;\n  @HostListener(\"click\")\n  @Other()\n  render(): void {}\n}\n",
     "render", (2, 2)),
    ("typescript", "@Injectable()\nexport class Service {}\n", "Service", (0, 0)),
    ("php", "<?php\nclass A {\n    #[Route(\"/x\")]\n    public function show() {}\n}\n", "show", (2, 4)),
]


@pytest.mark.parametrize(("language", "source", "name", "start"), DECORATED,
                         ids=[f"{lang}-{name}" for lang, _, name, _ in DECORATED])
def test_decorated_definitions_range_from_the_decorator_selection_on_the_name(
        language: str, source: str, name: str, start: tuple[int, int]) -> None:
    # The outline shows the whole definition; workspace/symbol jumps to selection_range.
    sym = find(parse_extract(language, source), name)
    assert sym.range[:2] == start
    line, col = next((i, ln.index(f" {name}") + 1) for i, ln in enumerate(source.split("\n"))
                     if f" {name}" in ln and "@" not in ln and "#[" not in ln)
    assert sym.selection_range == (line, col, line, col + len(name))


def test_symbols_from_an_older_extractor_are_rebuilt_by_the_next_sync(workspace: Path) -> None:
    from lsp_server.index import WorkspaceIndex
    from lsp_server.settings import parse
    from lsp_server.sync import sync_workspace

    settings = parse({"embedding": {"provider": "hash"}})[0]
    index = WorkspaceIndex(workspace, settings)
    assert not sync_workspace(index).error
    before = {p: index.symbols.symbols_in(p) for p in index.symbols.files()}
    assert before
    db = index.dir / "state.db"
    index.close()
    with sqlite3.connect(db) as conn:  # as a state.db written by extractor version 1 says
        conn.execute("UPDATE symbol_meta SET value = '1' WHERE key = 'version'")
    index = WorkspaceIndex(workspace, settings)
    try:
        assert index.symbols.needs_rebuild and len(index.symbols) == 0
        stats = sync_workspace(index)  # unchanged files: only the version mismatch makes it re-read them
        assert {p: index.symbols.symbols_in(p) for p in index.symbols.files()} == before
        assert not index.symbols.needs_rebuild and stats.changed_files == len(before)
    finally:
        index.close()
