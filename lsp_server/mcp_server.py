"""The MCP face: the folder's index as five tools for coding agents, over stdio.

`code-context mcp [PATH]` serves one folder. Like the language server it owns the folder's
index or follows its owner (shared_folder.py), so an agent beside an open editor searches
the editor's live index; indexing starts in the background and every tool answers
throughout. The tools only validate, delegate and shape: the engine answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from . import query
from .errors import EmbeddingError, FolderUnavailable, InvalidInput, StoreError
from .kinds import SymbolKind
from .query import Result
from .settings import Settings
from .shared_folder import SharedFolder

log = logging.getLogger(__name__)

MAX_RESULTS = 50
# Each result's code is clipped to this many characters, and the whole answer's code to
# MAX_TOTAL_CHARS, so one call cannot flood an agent's context window.
MAX_RESULT_CHARS = 2_000
MAX_TOTAL_CHARS = 24_000
WAIT_LIMIT_SECONDS = 600.0

INSTRUCTIONS = """\
Code Context indexes this folder's source into syntax-aware chunks (functions, classes,
methods) and searches them by meaning and by words at once, offline.

- search_code: when you know WHAT the code does but not what it is called ("where do we
  retry failed HTTP requests", "parse the config file"). It finds code whose names and
  words differ from your query, which grep cannot. Each result has the file path, 1-based
  line range, score and code.
- find_symbol: when you know (part of) a name: a function, class or method. Fuzzy, ranked
  like an editor's "go to symbol"; faster and more precise than search_code for names.
- find_similar: other code like a given line range (duplicates, other implementations).
- grep stays right for exact strings, every occurrence, or non-code text.

Results marked partial=true come from an index still being built: search again later for
complete answers, or call reindex with wait=true. The index follows file changes by itself;
you never need to index before searching.
"""


class CodeResult(BaseModel):
    path: str = Field(description="relative to the folder")
    start_line: int = Field(description="1-based, inclusive")
    end_line: int = Field(description="1-based, inclusive")
    score: float
    language: str
    symbol: str | None = Field(description="the definition the chunk belongs to, e.g. Class.method")
    content: str
    clipped: bool = Field(False, description="content was cut to bound the answer's size")


class SearchOutput(BaseModel):
    results: list[CodeResult]
    partial: bool = Field(description="true while the folder is still being indexed: results may be missing")
    indexed_files: int
    total_files: int
    note: str | None = Field(None, description="how the search was answered when not as asked")


class SymbolOut(BaseModel):
    name: str
    kind: str
    path: str
    start_line: int
    end_line: int
    container: str | None


class SymbolOutput(BaseModel):
    symbols: list[SymbolOut]


class Peer(BaseModel):
    process_id: int
    face: str


class StatusOutput(BaseModel):
    state: str = Field(description="idle | indexing | error")
    files: int
    indexed_files: int
    chunks: int
    pending_chunks: int = Field(description="chunks without vectors yet: keyword search covers them")
    secrets_redacted: int = Field(description="secrets replaced in the indexed text, in redacted_files files")
    redacted_files: int
    embedding_provider: str
    embedding_model: str
    store: str
    owner: Peer | None = Field(description="the process holding the index")
    followers: list[Peer]
    last_error: str | None


class ReindexOutput(BaseModel):
    started: bool
    finished: bool = Field(description="with wait: the index was idle before the time ran out")
    status: StatusOutput


def _clip(text: str, budget: int) -> tuple[str, bool]:
    limit = min(MAX_RESULT_CHARS, max(budget, 0))
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    cut = cut[:cut.rfind("\n") + 1] or cut
    return cut + f"… [clipped: {text[len(cut):].count(chr(10)) + 1} more lines]", True


def _results(results: list[Result]) -> list[CodeResult]:
    out, budget = [], MAX_TOTAL_CHARS
    for r in results:
        content, clipped = _clip(r.content, budget)
        budget -= len(content)
        out.append(CodeResult(path=r.path, start_line=r.start_line, end_line=r.end_line, score=r.score,
                              language=r.language, symbol=r.symbol, content=content, clipped=clipped))
    return out


def _render(results: list[CodeResult], header: str) -> str:
    """The compact text rendering, for clients that ignore structured output."""
    lines = [header]
    for r in results:
        lines.append(f"\n{r.path}:{r.start_line}-{r.end_line}  score {r.score:.3f}" + (f"  {r.symbol}" if r.symbol
                                                                                       else ""))
        lines.append(r.content.rstrip("\n"))
    return "\n".join(lines)


def _answer(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=model.model_dump(mode="json"))


class Tools:
    """The five tools over one SharedFolder; each validates, delegates and shapes."""

    def __init__(self, shared: SharedFolder) -> None:
        self.shared = shared

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except InvalidInput as exc:
            raise ToolError(str(exc)) from None
        except FolderUnavailable as exc:
            raise ToolError(f"the index is unavailable: {exc}") from None

    async def search_code(
        self,
        query_text: str,
        limit: int = 10,
        mode: str = "hybrid",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        languages: list[str] | None = None,
    ) -> CallToolResult:
        try:
            q = query.make(query_text, limit, mode, include or (), exclude or (), languages or ())
            query.check_limit(limit, most=MAX_RESULTS)
        except InvalidInput as exc:
            raise ToolError(str(exc)) from None
        note = None
        try:
            results, partial = await self._run(self.shared.search, q)
        except (EmbeddingError, StoreError, ToolError) as exc:  # provider or store down: words may still answer
            if q.mode == "keyword":
                raise ToolError(f"search failed: {exc}") from None
            keyword = query.Query(q.text, q.limit, "keyword", q.include, q.exclude, q.languages)
            try:
                results, partial = await self._run(self.shared.search, keyword)
            except (EmbeddingError, StoreError, ToolError) as again:
                raise ToolError(f"search failed: {again}") from None
            note = f"{q.mode} search is unavailable ({exc}); these are keyword results"
        status = await self._run(self.shared.status)
        out = SearchOutput(results=_results(results), partial=partial or status.state == "indexing",
                           indexed_files=status.indexed_files, total_files=status.files, note=note)
        header = (f"{len(out.results)} results for {q.text!r}" + (" (partial: indexing in progress)"
                                                                   if out.partial else "")
                  + (f"\nnote: {note}" if note else ""))
        return _answer(out, _render(out.results, header))

    async def find_similar(self, path: str, start_line: int, end_line: int, limit: int = 10) -> CallToolResult:
        rel, lines = await self._run(self._lines, path, start_line, end_line)
        try:
            query.check_limit(limit, most=MAX_RESULTS)
        except InvalidInput as exc:
            raise ToolError(str(exc)) from None
        results, partial = await self._run(self.shared.similar, rel, lines, start_line, end_line, limit)
        status = await self._run(self.shared.status)
        out = SearchOutput(results=_results(results), partial=partial, indexed_files=status.indexed_files,
                           total_files=status.files, note=None)
        return _answer(out, _render(out.results, f"{len(out.results)} chunks like {rel}:{start_line}-{end_line}"))

    def _lines(self, path: str, start_line: int, end_line: int) -> tuple[str, list[str]]:
        """The folder-relative path and the file's lines, checked against the range; never
        outside the folder."""
        root = self.shared.root
        try:
            resolved = (root / path).resolve()
            rel = resolved.relative_to(root).as_posix()
        except (ValueError, OSError, RuntimeError):
            raise InvalidInput("path", f"{path} is outside the folder") from None
        if not resolved.is_file():
            raise InvalidInput("path", f"{path} is not a file in the folder")
        if start_line < 1:
            raise InvalidInput("start_line", "must be at least 1")
        if end_line < start_line:
            raise InvalidInput("end_line", "must be at least start_line")
        lines = resolved.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if start_line > len(lines):
            raise InvalidInput("start_line", f"is past the end of the file ({len(lines)} lines)")
        return rel, lines

    async def find_symbol(self, query_text: str, limit: int = 20) -> CallToolResult:
        if not query_text.strip():
            raise ToolError("query: must be a non-empty string")
        try:
            query.check_limit(limit, most=MAX_RESULTS)
        except InvalidInput as exc:
            raise ToolError(str(exc)) from None
        hits = (await self._run(self.shared.symbols, query_text))[:limit]
        symbols = [SymbolOut(name=sym.name, kind=_kind_name(sym.kind), path=path, start_line=sym.range[0] + 1,
                             end_line=sym.range[2] + 1, container=sym.container) for path, sym, _ in hits]
        text = "\n".join([f"{len(symbols)} symbols matching {query_text!r}"] + [
            f"{s.path}:{s.start_line}-{s.end_line}  {s.kind} {s.container + '.' if s.container else ''}{s.name}"
            for s in symbols])
        return _answer(SymbolOutput(symbols=symbols), text)

    async def index_status(self) -> CallToolResult:
        out = await self._status()
        text = (f"{out.state}: {out.indexed_files}/{out.files} files, {out.chunks} chunks "
                f"({out.pending_chunks} waiting for vectors); {out.embedding_provider} {out.embedding_model}; "
                f"owner: {out.owner.face + ' process ' + str(out.owner.process_id) if out.owner else 'none'}"
                + (f"; last error: {out.last_error}" if out.last_error else ""))
        return _answer(out, text)

    async def _status(self) -> StatusOutput:
        s = await self._run(self.shared.status)
        owner = s.owner
        return StatusOutput(
            state=s.state, files=s.files, indexed_files=s.indexed_files, chunks=s.chunks,
            pending_chunks=s.pending_chunks, secrets_redacted=s.redactions, redacted_files=s.redacted_files,
            embedding_provider=s.embedding.provider,
            embedding_model=s.embedding.model, store=s.store.uri,
            owner=Peer(process_id=owner.process_id, face=owner.face) if owner else None,
            followers=[Peer(process_id=c.process_id, face=c.face) for c in owner.clients] if owner else [],
            last_error=s.last_error)

    async def reindex(self, force: bool = False, wait: bool = False) -> CallToolResult:
        started = await self._run(self.shared.reindex, force)
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        status = await self._status()
        while wait and status.state == "indexing" and time.monotonic() < deadline:
            await anyio.sleep(0.5)
            status = await self._status()
        finished = status.state != "indexing"
        out = ReindexOutput(started=started, finished=finished, status=status)
        return _answer(out, f"reindex {'started' if started else 'already running'}; "
                            f"{'idle' if finished else 'still indexing'}: {status.indexed_files}/{status.files} files")


def _kind_name(kind: int) -> str:
    try:
        return SymbolKind(kind).name.lower()
    except ValueError:
        return "symbol"


def build(shared: SharedFolder) -> MCPServer[Any]:
    """The MCP server: tool names and argument names are an interface outside clients rely on."""
    tools = Tools(shared)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[None]:
        # The folder opens once the protocol owns stdout, so nothing can print into it.
        threading.Thread(target=shared.start, name="cc-open", daemon=True).start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(shared.close)

    server: MCPServer[Any] = MCPServer("code-context", instructions=INSTRUCTIONS, lifespan=lifespan)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only, description=(
        "Search this folder's code by meaning and words at once: describe what the code does ('where do we "
        "validate user input') or name identifiers. Use it instead of grep when you do not know the exact "
        "names. Returns ranked chunks with path, 1-based start_line/end_line, score and code. partial=true "
        "means the folder is still being indexed. mode: hybrid (default), semantic or keyword; include/exclude "
        "take gitignore-style globs such as 'src/**' or '*.test.ts'; languages e.g. ['python', 'typescript']."))
    async def search_code(
        query: Annotated[str, Field(description="what the code does, or names in it", min_length=1, max_length=1000)],
        limit: Annotated[int, Field(description="results to return", ge=1, le=MAX_RESULTS)] = 10,
        mode: Literal["hybrid", "semantic", "keyword"] = "hybrid",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        languages: list[str] | None = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        return await tools.search_code(query, limit, mode, include, exclude, languages)

    @server.tool(annotations=read_only, description=(
        "Find code similar to the given lines of a file (other implementations, near-duplicates), leaving out "
        "those lines themselves. path is relative to the folder; lines are 1-based and inclusive."))
    async def find_similar(path: str, start_line: Annotated[int, Field(ge=1)], end_line: Annotated[int, Field(ge=1)],
                           limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 10,
                           ) -> Annotated[CallToolResult, SearchOutput]:
        return await tools.find_similar(path, start_line, end_line, limit)

    @server.tool(annotations=read_only, description=(
        "Find a function, class, method or other definition by (part of) its name, ranked like an editor's "
        "'go to symbol': exact names first, then prefixes, word starts ('gud' finds get_user_data) and "
        "'Class.method'. Better than search_code when you know the name."))
    async def find_symbol(query: Annotated[str, Field(min_length=1, max_length=1000)],
                          limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 20,
                          ) -> Annotated[CallToolResult, SymbolOutput]:
        return await tools.find_symbol(query, limit)

    @server.tool(annotations=read_only, description=(
        "The index's state (idle, indexing or error), file and chunk counts, the embedding model, the store, "
        "the process that owns the index and the last error. Searching never needs this first."))
    async def index_status() -> Annotated[CallToolResult, StatusOutput]:
        return await tools.index_status()

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True, open_world_hint=False),
                 description=(
        "Bring the index up to date with the files now (it also follows changes by itself). force re-reads "
        "every file; wait returns once the index is idle (at most 10 minutes)."))
    async def reindex(force: bool = False, wait: bool = False) -> Annotated[CallToolResult, ReindexOutput]:
        return await tools.reindex(force, wait)

    return server


def run(root: Path, settings: Settings) -> int:
    """Serve the folder over stdio until the client closes the connection."""
    shared = SharedFolder(root, settings, "mcp", watch=True)
    build(shared).run("stdio")
    return 0

