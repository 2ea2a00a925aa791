"""The `code-context` command: index, search and inspect a folder from a terminal.

A thin front end over the same engine as the language server. Bad input exits with
code 2 and one line on stderr; results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import typing
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from . import protocol, query
from . import settings as settings_mod
from .convert import camel
from .errors import EmbeddingError, FolderUnavailable, InvalidInput, StoreError
from .settings import Settings

if TYPE_CHECKING:
    from .shared_folder import SharedFolder

# Settings reachable from flags and CODE_CONTEXT_<FLAG> variables: (flag, section, field, help).
# Each flag's type, choices and default come from the setting itself (settings.py), so the
# two cannot drift; a boolean that defaults to on is turned off with --no-<flag>.
SETTING_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("provider", "embedding", "provider", "embedding provider"),
    ("model", "embedding", "model", "embedding model name or local path"),
    ("base-url", "embedding", "base_url", "OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1"),
    ("api-key-env", "embedding", "api_key_env", "environment variable holding the API key"),
    ("dimensions", "embedding", "dimensions", "shorten vectors to this size (models that support it)"),
    ("batch-size", "embedding", "batch_size", "chunks per embedding request"),
    ("concurrency", "embedding", "concurrency", "embedding requests in flight (remote providers)"),
    ("max-tokens-per-request", "embedding", "max_tokens_per_request", "token budget of one remote request"),
    ("timeout", "embedding", "timeout", "seconds a remote embedding request may take"),
    ("max-retries", "embedding", "max_retries", "retries of a failed remote request"),
    ("store-uri", "store", "uri", "Milvus server URI or Milvus Lite .db file (default: per-workspace file)"),
    ("store-token-env", "store", "token_env", "environment variable holding the Milvus token"),
    ("max-file-size-kb", "index", "max_file_size_kb", "skip files larger than this"),
    ("redact-secrets", "index", "redact_secrets", "replace secrets found in files before storing or embedding"),
)
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _setting(section: str, name: str) -> attrs.Attribute:
    section_cls: Any = attrs.fields_dict(Settings)[section].type
    return attrs.fields_dict(section_cls)[name]


def _flag_type(field: attrs.Attribute) -> Any:
    """The Python type a flag's text becomes: int, float, str or bool; Literal choices as str."""
    tp = field.type
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Literal or typing.get_origin(tp) is None:
        return str if typing.get_origin(tp) is typing.Literal else tp
    return args[0] if len(args) == 1 else str


def _env_value(name: str, tp: Any, text: str) -> Any:
    if tp is bool:
        if text.strip().lower() not in _BOOLS:
            raise UsageError(f"{name} must be 1 or 0, got {text!r}")
        return _BOOLS[text.strip().lower()]
    try:
        return tp(text)
    except ValueError:
        kind = {int: "an integer", float: "a number"}.get(tp, "a string")
        raise UsageError(f"{name} must be {kind}, got {text!r}") from None


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_settings_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (also CODE_CONTEXT_<NAME> environment variables)")
    for flag, section, name, help_text in SETTING_FLAGS:
        field = _setting(section, name)
        tp, dest = _flag_type(field), name_of(flag)
        if tp is bool:  # on by default: the flag turns it off
            g.add_argument(f"--no-{flag}", dest=dest, action="store_const", const=False, default=None,
                           help=f"do not {help_text} (default: do; CODE_CONTEXT_{dest.upper()}=0)")
            continue
        choices = list(typing.get_args(field.type)) if typing.get_origin(field.type) is typing.Literal else None
        default = "" if field.default is None else f" (default: {field.default})"
        g.add_argument(f"--{flag}", dest=dest, type=tp, choices=choices, help=f"{help_text}{default}")


def name_of(flag: str) -> str:
    return flag.replace("-", "_")


def _add_verbose(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand without -v leaves the top-level value (`code-context -v index`) alone.
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log progress, skipped files and redactions to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="code-context", description="Semantic code search over a folder, offline by default.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and skipped files to stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands = sub.choices

    p = sub.add_parser("index", help="index a folder, or bring its index up to date")
    p.add_argument("path")
    p.add_argument("--force", action="store_true", help="re-read every file (vectors still come from the cache)")
    _add_settings_flags(p)

    p = sub.add_parser("search", help="search an indexed folder")
    p.add_argument("path")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=None, help="results, 1-100 (default: 10)")
    p.add_argument("--mode", default=None, help="hybrid (default), semantic or keyword")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--include", action="append", default=[], help="only paths matching this glob (repeatable)")
    p.add_argument("--exclude", action="append", default=[], help="skip paths matching this glob (repeatable)")
    p.add_argument("--language", action="append", default=[], help="only this language (repeatable)")
    p.add_argument("--no-sync", action="store_true", help="search the index as it is, without syncing first")
    _add_settings_flags(p)

    p = sub.add_parser("status", help="what is indexed, with which model, and where")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    _add_settings_flags(p)

    p = sub.add_parser("verify", help="compare a folder's index with its files; exit 1 on differences")
    p.add_argument("path")
    p.add_argument("--no-sync", action="store_true", help="check the index as it is (default: sync first)")
    _add_settings_flags(p)

    p = sub.add_parser("clear", help="delete a folder's index")
    p.add_argument("path")
    _add_settings_flags(p)

    p = sub.add_parser("mcp", help="run the MCP server for coding agents on stdio, for one folder")
    p.add_argument("path", nargs="?", default=".", help="the folder (default: the current directory)")
    _add_settings_flags(p)

    for name, p in commands.items():
        if name != "serve":  # serve has --log-level
            _add_verbose(p)

    p = sub.add_parser("serve", help="run the language server (stdio by default)")
    add_serve_arguments(p)
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true", help="listen on a TCP port instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="TCP address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=2087, help="TCP port (default: 2087)")
    parser.add_argument("--log-file", help="also write the log to this file")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level for stderr and --log-file (default: info)")


def settings_from(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Settings:
    """Flags win over CODE_CONTEXT_* variables, which win over defaults."""
    environ = dict(os.environ) if environ is None else environ
    raw: dict[str, Any] = {}
    for flag, section, name, _help in SETTING_FLAGS:
        dest = name_of(flag)
        value = getattr(args, dest, None)
        env_name = f"CODE_CONTEXT_{dest.upper()}"
        if value is None and environ.get(env_name):
            value = _env_value(env_name, _flag_type(_setting(section, name)), environ[env_name])
        if value is not None:
            raw.setdefault(section, {})[camel(name)] = value
    parsed, bad = settings_mod.parse(raw)
    if bad:
        raise UsageError(f"invalid setting: {', '.join(bad)}")
    return parsed


def _folder(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{path}: no such folder")
    if not p.is_dir():
        raise UsageError(f"{path}: not a folder")
    return p.resolve()


class _ProgressBar:
    """Indexing progress on stderr: files read, then chunks embedded, each with rate and ETA.

    On a terminal one line redrawn in place (at most 10 times a second); otherwise a plain
    line when a phase starts, every PLAIN_EVERY seconds and when it ends, for CI logs."""

    PLAIN_EVERY = 5.0

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._phase = ""
        self._started = 0.0
        self._first = 0  # done when the phase started: the rate counts this run's work only
        self._last = 0.0  # when a line was last shown
        self._called = 0.0  # when progress was last reported
        self._drawn = False

    def __call__(self, done: int, total: int, message: str) -> None:
        phase = "chunks" if message.startswith("embedding") else "files"
        now = time.monotonic()
        if phase != self._phase:
            # Embedding reports its first batch done, not its start: it began when reading ended.
            embedding_after_files = phase == "chunks" and self._phase == "files"
            self._started = self._called if embedding_after_files else now
            self._first = 0 if embedding_after_files else done
            self._phase = phase
        elif done < total and now - self._last < (0.1 if self.tty else self.PLAIN_EVERY):
            self._called = now
            return
        self._called = self._last = now
        line = self._line(phase, done, total, now - self._started)
        if self.tty:
            width = 24
            filled = int(width * done / total) if total else width
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}\x1b[K")
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _line(self, phase: str, done: int, total: int, elapsed: float) -> str:
        text = f"{'chunks embedded' if phase == 'chunks' else 'files'} {done}/{total}"
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        if done >= total:
            return f"{text}, {elapsed:.1f} s"
        if rate > 0:
            eta = int((total - done) / rate)
            text += f"  {rate:.0f}/s  ETA {eta // 60}:{eta % 60:02d}"
        return text

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


# Loggers of libraries whose failures the command reports itself, in one line: Milvus Lite
# logs a traceback for a locked store on every attempt to open it.
_LIBRARY_LOGGERS = ("milvus_lite", "pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer",
                    "transformers", "sentence_transformers")


def _quiet(args: argparse.Namespace, own_level: int) -> None:
    """Without -v, libraries log nothing and our own modules log from own_level up. Called
    after the imports: pymilvus sets its loggers' levels when it is imported."""
    if args.verbose:
        return
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    logging.getLogger("lsp_server").setLevel(own_level)


class Failure(Exception):
    """A failure to report in one line with exit code 1 (a store, a provider, an owner)."""


def _shared(args: argparse.Namespace, warm: bool = True) -> SharedFolder:
    """The folder as this command sees it: forwarded to the process that owns its index, or
    opened here (and served to others while the command runs) when nobody does."""
    from .shared_folder import SharedFolder

    shared = SharedFolder(_folder(args.path), settings_from(args), "cli", warm=warm, on_owned=lambda host: None)
    shared.start()
    if shared.error:
        shared.close()
        raise Failure(shared.error)
    return shared


def _owner_line(status: protocol.FolderStatus) -> str:
    owner = status.owner
    if owner is None:
        return "owner:      none"
    clients = ", ".join(f"{c.face} {c.process_id}" for c in owner.clients) or "none"
    here = " (this command)" if owner.process_id == os.getpid() else ""
    return f"owner:      process {owner.process_id} ({owner.face}){here}; followers: {clients}"


def cmd_index(args: argparse.Namespace) -> int:
    from .sync import sync_workspace

    shared = _shared(args)
    _quiet(args, logging.WARNING)
    bar = _ProgressBar()
    try:
        if shared.host is None:  # another process owns the folder: it indexes, we watch
            return _index_remotely(shared, args, bar)
        host = shared.host
        host.syncing = True  # a follower's reindex waits for this one
        try:
            stats = sync_workspace(host.index, progress=bar, force=args.force)
        except KeyboardInterrupt:
            bar.close()
            print("interrupted: the next run completes the index", file=sys.stderr)
            return 130
        finally:
            host.syncing = False
            bar.close()
        print(f"files: {stats.files}  chunks: {host.index.store.count()}  changed files: {stats.changed_files}  "
              f"deleted files: {stats.deleted_files}  embedded this run: {stats.embedded}  "
              f"from cache: {stats.cached}  skipped: {len(stats.skipped)}  seconds: {stats.seconds:.2f}")
        if stats.pending:
            print(f"pending: {stats.pending} chunks wait for embedding (keyword search covers them)")
        _print_redactions(host.index)
        if args.verbose:
            for path, reason in sorted(stats.skipped.items()):
                print(f"skipped {path}: {reason}", file=sys.stderr)
        if stats.error:
            print(f"error: {stats.error}", file=sys.stderr)
            return 1
        return 0
    finally:
        shared.close()


def _index_remotely(shared: SharedFolder, args: argparse.Namespace, bar: _ProgressBar) -> int:
    """Ask the owner to sync (unless it already does) and follow its status until it is idle."""
    started = time.monotonic()
    shared.reindex(force=args.force)
    while True:
        status = shared.status()
        bar(status.indexed_files, max(status.files, 1), f"indexing by process {status.owner.process_id}"
            if status.owner else "indexing")
        if status.state != "indexing":
            break
        time.sleep(0.2)
    bar.close()
    print(f"files: {status.files}  chunks: {status.chunks}  pending: {status.pending_chunks}  "
          f"seconds: {time.monotonic() - started:.2f}  (indexed by process "
          f"{status.owner.process_id if status.owner else '?'}, which owns this folder)")
    print(f"secrets redacted: {status.redactions} in {status.redacted_files} files")
    if status.last_error:
        print(f"error: {status.last_error}", file=sys.stderr)
        return 1
    return 0


def _print_redactions(index: Any) -> None:
    """Totals over the index, then each file with what was redacted and where (never the secret)."""
    if not index.settings.index.redact_secrets:
        print("secrets: not redacted (redaction is off)")
        return
    redacted = index.files.redactions()
    print(f"secrets redacted: {sum(n for n, _ in redacted.values())} in {len(redacted)} files")
    for path, (_count, reason) in redacted.items():
        print(f"redacted {path}: {reason}")


def cmd_search(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    q = query.make(args.query, args.limit if args.limit is not None else settings.search.limit,
                   args.mode or settings.search.mode, args.include, args.exclude, args.language,
                   names={"include": "--include", "exclude": "--exclude"})
    shared = _shared(args)
    try:
        # Quiet apart from the results, their summary line and one line for an error.
        _quiet(args, logging.CRITICAL + 1)
        if not args.verbose:
            warnings.simplefilter("ignore")
        sync_error = None
        if shared.host is not None and not args.no_sync:  # a forwarded search is already fresh
            from .sync import sync_workspace

            sync_error = sync_workspace(shared.host.index).error
        started = time.perf_counter()
        results, _partial = shared.search(q, patient=True)
        elapsed = time.perf_counter() - started
        if sync_error:  # after the search: a store that cannot open fails it with this same message
            print(f"warning: {sync_error}", file=sys.stderr)
    finally:
        shared.close()
    for r in results:
        if args.json:
            print(json.dumps({"path": r.path, "start_line": r.start_line, "end_line": r.end_line,
                              "score": r.score, "language": r.language, "symbol": r.symbol,
                              "content": r.content}, ensure_ascii=False))
        else:
            symbol = f"  {r.symbol}" if r.symbol else ""
            print(f"{r.path}:{r.start_line}-{r.end_line}  {r.score:.3f}{symbol}")
            snippet = [line for line in r.content.splitlines() if line.strip()][:3]
            for line in snippet:
                print(f"    {line[:120]}")
    if not args.json:
        print(f"{len(results)} results in {elapsed * 1000:.0f} ms", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .locations import index_dir_for

    shared = _shared(args, warm=False)
    try:
        status = shared.status()
    finally:
        shared.close()
    if args.json:
        print(json.dumps({**protocol.unstructure(status), "root": str(shared.root),
                          "indexDir": str(index_dir_for(shared.root))}, indent=2))
        return 0
    emb = status.embedding
    print(f"workspace:  {shared.root}")
    print(f"state:      {status.state}")
    print(f"files:      {status.indexed_files} indexed")
    print(f"chunks:     {status.chunks} ({status.pending_chunks} waiting for vectors)")
    if shared.settings.index.redact_secrets:
        print(f"secrets:    {status.redactions} redacted in {status.redacted_files} files")
    else:
        print("secrets:    not redacted (redaction is off)")
    print(f"embedding:  {emb.provider} {emb.model} ({emb.dimension} dimensions)")
    print(f"store:      {status.store.uri}")
    print(f"index dir:  {index_dir_for(shared.root)}")
    print(_owner_line(status))
    if status.last_error:
        print(f"last error: {status.last_error}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    shared = _shared(args, warm=False)
    try:
        if shared.host is None:
            answer = shared.remote.verify() if shared.remote is not None else None
            assert answer is not None
            files, chunks = answer.files, answer.chunks
            found = {"missing": answer.missing, "extra": answer.extra, "duplicate": answer.duplicates,
                     "unlike the search index": answer.search_index}
            orphans = answer.symbol_orphans
        else:
            from .sync import sync_workspace
            from .verify import verify

            if not args.no_sync:
                sync_workspace(shared.host.index)
            diff = verify(shared.host.index)
            files, chunks = diff.files, diff.chunks
            found = {"missing": [f"{p} {c}" for p, c in diff.missing], "extra": [f"{p} {c}" for p, c in diff.extra],
                     "duplicate": [f"{p} {c}" for p, c in diff.duplicates],
                     "unlike the search index": [f"{p} {c}" for p, c in diff.search_index]}
            orphans = diff.symbol_orphans
    finally:
        shared.close()
    for label, items in found.items():
        for item in items[:50]:
            path, _, chunk = item.rpartition(" ")
            print(f"{label}: {path} chunk {chunk}")
    for path in orphans[:50]:
        print(f"orphan symbols: {path}")
    ok = not (orphans or any(found.values()))
    print(f"{files} files, {chunks} chunks: " + ("index matches the files" if ok else
          f"{len(found['missing'])} missing, {len(found['extra'])} extra, {len(found['duplicate'])} duplicated, "
          f"{len(found['unlike the search index'])} unlike the search index, {len(orphans)} files with orphan symbols"))
    return 0 if ok else 1


def cmd_clear(args: argparse.Namespace) -> int:
    shared = _shared(args, warm=False)
    try:
        shared.clear()
    finally:
        shared.close()
    print(f"cleared the index of {shared.root}")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from .mcp_server import run

    return run(_folder(args.path), settings_from(args))


def cmd_serve(args: argparse.Namespace) -> int:
    from .launch import serve

    return serve(args)


COMMANDS = {"index": cmd_index, "search": cmd_search, "status": cmd_status, "verify": cmd_verify,
            "clear": cmd_clear, "mcp": cmd_mcp, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
        return COMMANDS[args.command](args)
    except (UsageError, InvalidInput) as exc:
        print(f"code-context: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, not a traceback, for failures we foresee
        if _foreseen(exc):
            print(f"code-context: error: {exc}", file=sys.stderr)
            return 1
        raise


def _foreseen(exc: Exception) -> bool:
    """A store, provider or owner failure: one line, exit code 1."""
    return isinstance(exc, (Failure, FolderUnavailable, StoreError, EmbeddingError))


if __name__ == "__main__":
    sys.exit(main())
