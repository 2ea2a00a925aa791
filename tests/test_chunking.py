"""The chunker: whole-file coverage, no nested duplicates, symbol paths, large files."""

from __future__ import annotations

import textwrap

import pytest

from lsp_server import chunking, languages

SOURCES: dict[str, tuple[str, str, str]] = {
    # language: (file name, source, a symbol path that must name some chunk)
    "python": ("a.py", """
        import os

        class Session:
            def get(self, url):
                return self.request("GET", url)

            def request(self, method, url):
                headers = {"User-Agent": "x"}
                return os.environ.get(method, url)
        """, "Session.request"),
    "javascript": ("a.js", """
        import x from "y";

        class Session {
          get(url) {
            return this.request("GET", url);
          }
          request(method, url) {
            const headers = { agent: "x" };
            return fetch(url, { method, headers });
          }
        }
        """, "Session.request"),
    "typescript": ("a.ts", """
        import { x } from "y";

        export class Session {
          get(url: string): Promise<string> {
            return this.request("GET", url);
          }
          request(method: string, url: string): Promise<string> {
            const headers = { agent: "x" };
            return fetch(url, { method, headers }).then((r) => r.text());
          }
        }
        """, "Session.request"),
    "tsx": ("a.tsx", """
        export function Button(props: { label: string }) {
          const label = props.label.toUpperCase();
          return <button className="primary">{label}</button>;
        }

        export function Link(props: { href: string }) {
          const href = props.href.trim();
          return <a href={href}>{href}</a>;
        }
        """, "Link"),
    "go": ("a.go", """
        package main

        type Session struct {
            base string
        }

        func (s *Session) Get(url string) string {
            return s.Request("GET", url)
        }

        func (s *Session) Request(method string, url string) string {
            headers := map[string]string{"agent": "x"}
            return method + url + headers["agent"] + s.base
        }
        """, "Request"),
    "rust": ("a.rs", """
        struct Session { base: String }

        impl Session {
            fn get(&self, url: &str) -> String {
                self.request("GET", url)
            }
            fn request(&self, method: &str, url: &str) -> String {
                let headers = vec!["agent"];
                format!("{} {} {} {:?}", method, url, self.base, headers)
            }
        }
        """, "Session.request"),
    "java": ("A.java", """
        package demo;

        public class Session {
            String get(String url) {
                return request("GET", url);
            }
            String request(String method, String url) {
                String headers = "agent";
                return method + url + headers;
            }
        }
        """, "Session.request"),
    "c": ("a.c", """
        #include <stdio.h>

        static int get(const char *url) {
            return request("GET", url);
        }

        int request(const char *method, const char *url) {
            const char *headers = "agent";
            return printf("%s %s %s", method, url, headers);
        }
        """, "request"),
    "cpp": ("a.cpp", """
        #include <string>

        class Session {
         public:
          std::string get(const std::string& url) {
            return request("GET", url);
          }
          std::string request(const std::string& method, const std::string& url) {
            std::string headers = "agent";
            return method + url + headers;
          }
        };
        """, "Session.request"),
    "csharp": ("A.cs", """
        using System;

        public class Session {
            public string Get(string url) {
                return Request("GET", url);
            }
            public string Request(string method, string url) {
                var headers = "agent";
                return method + url + headers;
            }
        }
        """, "Session.Request"),
    "ruby": ("a.rb", """
        require "net/http"

        class Session
          def get(url)
            request("GET", url)
          end

          def request(method, url)
            headers = { "agent" => "x" }
            Net::HTTP.get(URI(url), headers)
          end
        end
        """, "Session.request"),
    "php": ("a.php", """
        <?php

        class Session {
            public function get($url) {
                return $this->request("GET", $url);
            }
            public function request($method, $url) {
                $headers = ["agent" => "x"];
                return file_get_contents($url) . $method . $headers["agent"];
            }
        }
        """, "Session.request"),
    "bash": ("a.sh", """
        #!/bin/bash
        set -e

        get() {
          request GET "$1"
        }

        request() {
          local headers="agent: x"
          curl -X "$1" -H "$headers" "$2"
        }
        """, "request"),
    "lua": ("a.lua", """
        local M = {}

        local function get(url)
          return M.request("GET", url)
        end

        function M.request(method, url)
          local headers = { agent = "x" }
          return method .. url .. headers.agent
        end

        return M
        """, "get"),
    "scala": ("a.scala", """
        object Session {
          def get(url: String): String = {
            request("GET", url)
          }

          def request(method: String, url: String): String = {
            val headers = Map("agent" -> "x")
            method + url + headers("agent")
          }
        }
        """, "Session.request"),
    "kotlin": ("a.kt", """
        class Session {
            fun get(url: String): String {
                return request("GET", url)
            }

            fun request(method: String, url: String): String {
                val headers = mapOf("agent" to "x")
                return method + url + headers["agent"]
            }
        }
        """, "Session.request"),
}


def _chunks(language: str, max_chars: int = 90) -> tuple[str, list[chunking.Chunk]]:
    name, source, _ = SOURCES[language]
    text = textwrap.dedent(source).lstrip("\n")
    tree = chunking.parse(language, text.encode())
    assert tree is not None, f"no grammar for {language}"
    return text, chunking.chunk(name, text, language, tree, chunking.ChunkSizes(max_chars=max_chars))


def _assert_tiles(text: str, chunks: list[chunking.Chunk]) -> None:
    lines = text.split("\n")
    covered: list[int] = []
    for c in chunks:
        assert c.start_line <= c.end_line
        covered.extend(range(c.start_line, c.end_line + 1))
        assert c.content == "\n".join(lines[c.start_line - 1:c.end_line])
    assert len(covered) == len(set(covered)), "a line appears in two chunks"
    nonblank = {i + 1 for i, line in enumerate(lines) if line.strip()}
    assert nonblank <= set(covered), f"lines not indexed: {sorted(nonblank - set(covered))}"


def test_at_least_twelve_languages_parse() -> None:
    assert len(languages.parsed_languages()) >= 12


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_every_line_once_and_symbol_paths(language: str) -> None:
    text, chunks = _chunks(language)
    _assert_tiles(text, chunks)
    assert len(chunks) >= 2, "a definition larger than the limit must be split"
    expected = SOURCES[language][2]
    assert expected in {c.symbol for c in chunks}, [c.symbol for c in chunks]
    assert all(c.language == language for c in chunks)


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_small_file_is_one_chunk(language: str) -> None:
    text, chunks = _chunks(language, max_chars=10_000)
    _assert_tiles(text, chunks)
    assert len(chunks) == 1


def test_class_and_methods_are_not_duplicated() -> None:
    text, chunks = _chunks("python", max_chars=120)
    methods = [c for c in chunks if c.symbol in ("Session.get", "Session.request")]
    assert {c.symbol for c in methods} == {"Session.get", "Session.request"}
    assert all(c.kind == 6 for c in methods), "functions inside a class are methods"
    # The class header is indexed once, in the chunk of its first method, not as a chunk of its own
    # repeating the methods' lines.
    assert sum("class Session" in c.content for c in chunks) == 1
    assert sum("def request" in c.content for c in chunks) == 1


def test_oversized_function_splits_at_statement_boundaries() -> None:
    body = "\n".join(f"    value_{i} = compute_{i}(argument_{i}) + offset_{i}" for i in range(200))
    text = f"def enormous():\n{body}\n    return value_0\n"
    chunks = chunking.chunk("big.py", text, "python", chunking.parse("python", text.encode()))
    _assert_tiles(text, chunks)
    assert len(chunks) > 5
    assert all(len(c.content.replace("    ", "")) <= chunking.DEFAULT_MAX_CHARS + 60 for c in chunks)
    assert chunks[0].symbol == "enormous" and chunks[0].kind == 12
    assert all(c.symbol == "enormous" for c in chunks), "pieces keep their definition's name"


def test_100_kb_file_keeps_ast_chunking() -> None:
    funcs = [f"def handler_{i}(request):\n    data = request.get('field_{i}')\n"
             f"    if data is None:\n        raise ValueError('missing field_{i}')\n"
             f"    return transform_{i}(data) * {i}\n" for i in range(700)]
    text = "\n\n".join(funcs)
    assert len(text.encode()) > 100_000
    chunks = chunking.chunk("huge.py", text, "python", chunking.parse("python", text.encode()))
    _assert_tiles(text, chunks)
    # AST chunks begin at a definition: a character splitter would cut mid-function.
    assert all(c.content.lstrip().startswith("def handler_") for c in chunks)
    assert len(chunks) >= 70
    assert chunks[0].symbol == "handler_0"
    assert chunks[-1].end_line == len(text.splitlines())


def test_deep_nesting_does_not_overflow() -> None:
    depth = 3000
    text = "x = " + "[" * depth + "1" + "]" * depth + "\n" + "y = 2\n"
    chunks = chunking.chunk("deep.py", text, "python", chunking.parse("python", text.encode()))
    _assert_tiles(text, chunks)


def test_text_files_split_by_lines() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 80 for i in range(20)]
    text = "\n\n".join(paragraphs) + "\n"
    chunks = chunking.chunk("notes.md", text, "markdown", None)
    _assert_tiles(text, chunks)
    assert len(chunks) > 3
    assert all(c.symbol is None for c in chunks)


def test_empty_and_blank_files_have_no_chunks() -> None:
    assert chunking.chunk("e.py", "", "python", chunking.parse("python", b"")) == []
    assert chunking.chunk("b.txt", "\n\n  \n", "text", None) == []


def test_syntax_errors_still_cover_the_file() -> None:
    text = "def broken(:\n    return )\n\nclass Fine:\n    pass\n"
    chunks = chunking.chunk("bad.py", text, "python", chunking.parse("python", text.encode()))
    _assert_tiles(text, chunks)


def test_parse_time_bound_falls_back_to_nothing_not_a_hang() -> None:
    source = ("def f():\n    return [" + "1, " * 200 + "]\n").encode() * 2000
    with pytest.raises(chunking.ParseTimeout):
        chunking.parse("python", source, timeout=0.0)
    assert chunking.parse("python", source, timeout=30).root_node.child_count == 2000


def test_parsing_does_not_keep_the_source_alive() -> None:
    """py-tree-sitter 0.26 keeps a reference to every piece the read callback returns;
    parse() gives them back, or a server re-parsing on every save grows without end."""
    import gc
    import tracemalloc

    source = b"def handler(request):\n    return request.get('field')\n" * 6000  # ~330 KB
    chunking.parse("python", source)  # grammar and parser set up outside the measurement
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            chunking.parse("python", source, timeout=30)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < len(source), f"{grown} bytes held after 20 parses of {len(source)} bytes"
    # A timed-out parse gives its pieces back too.
    with pytest.raises(chunking.ParseTimeout):
        chunking.parse("python", source, timeout=0.0)
