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
from pathlib import Path
from typing import Any, NoReturn

from . import settings as settings_mod
from .settings import MODES, Settings

# Settings reachable from flags and CODE_CONTEXT_* variables: flag -> (section, key).
SETTING_FLAGS: dict[str, tuple[str, str]] = {
    "provider": ("embedding", "provider"),
    "model": ("embedding", "model"),
    "base_url": ("embedding", "baseUrl"),
    "api_key_env": ("embedding", "apiKeyEnv"),
    "dimensions": ("embedding", "dimensions"),
    "batch_size": ("embedding", "batchSize"),
    "concurrency": ("embedding", "concurrency"),
    "store_uri": ("store", "uri"),
    "store_token_env": ("store", "tokenEnv"),
    "max_file_size_kb": ("index", "maxFileSizeKb"),
    "redact_secrets": ("index", "redactSecrets"),
}
_INT_FLAGS = {"dimensions", "batch_size", "concurrency", "max_file_size_kb"}
_BOOL_FLAGS = {"redact_secrets"}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_settings_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (also CODE_CONTEXT_<NAME> environment variables)")
    g.add_argument("--provider", choices=["local", "openai", "hash"], help="embedding provider (default: local)")
    g.add_argument("--model", help="embedding model name or local path")
    g.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1")
    g.add_argument("--api-key-env", help="environment variable holding the API key (default: OPENAI_API_KEY)")
    g.add_argument("--dimensions", type=int, help="shorten vectors to this size (models that support it)")
    g.add_argument("--batch-size", type=int, help="chunks per embedding request")
    g.add_argument("--concurrency", type=int, help="embedding requests in flight (remote providers)")
    g.add_argument("--store-uri", help="Milvus server URI or Milvus Lite .db file (default: per-workspace file)")
    g.add_argument("--store-token-env", help="environment variable holding the Milvus token")
    g.add_argument("--max-file-size-kb", type=int, help="skip files larger than this (default: 1024)")
    g.add_argument("--no-redact-secrets", dest="redact_secrets", action="store_const", const=False, default=None,
                   help="store and embed secrets found in files as they are (default: replace them; "
                        "CODE_CONTEXT_REDACT_SECRETS=0)")


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
    for flag, (section, key) in SETTING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            env_value = environ.get(f"CODE_CONTEXT_{flag.upper()}")
            if env_value:
                value = env_value
                if flag in _INT_FLAGS:
                    try:
                        value = int(env_value)
                    except ValueError:
                        raise UsageError(f"CODE_CONTEXT_{flag.upper()} must be an integer, got {env_value!r}")
                elif flag in _BOOL_FLAGS:
                    if env_value.strip().lower() not in _BOOLS:
                        raise UsageError(f"CODE_CONTEXT_{flag.upper()} must be 1 or 0, got {env_value!r}")
                    value = _BOOLS[env_value.strip().lower()]
        if value is not None:
            raw.setdefault(section, {})[key] = value
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
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.enabled or (time.monotonic() - self._last < 0.1 and done < total):
            return
        self._last = time.monotonic()
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {message[:60]:<60}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 95 + "\r")
            sys.stderr.flush()


def _open(args: argparse.Namespace):
    from .index import WorkspaceIndex

    return WorkspaceIndex(_folder(args.path), settings_from(args))


def cmd_index(args: argparse.Namespace) -> int:
    from .sync import sync_workspace

    index = _open(args)
    bar = _ProgressBar()
    try:
        stats = sync_workspace(index, progress=bar, force=args.force)
    except KeyboardInterrupt:
        bar.close()
        print("interrupted: the next run completes the index", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(f"files: {stats.files}  chunks: {index.store.count()}  changed files: {stats.changed_files}  "
          f"deleted files: {stats.deleted_files}  embedded this run: {stats.embedded}  "
          f"from cache: {stats.cached}  skipped: {len(stats.skipped)}  seconds: {stats.seconds:.2f}")
    if stats.pending:
        print(f"pending: {stats.pending} chunks wait for embedding (keyword search covers them)")
    _print_redactions(index)
    if args.verbose:
        for path, reason in sorted(stats.skipped.items()):
            print(f"skipped {path}: {reason}", file=sys.stderr)
    if stats.error:
        print(f"error: {stats.error}", file=sys.stderr)
        return 1
    return 0


def _print_redactions(index: Any) -> None:
    """Totals over the index, then each file with what was redacted and where (never the secret)."""
    if not index.settings.index.redact_secrets:
        print("secrets: not redacted (redaction is off)")
        return
    redacted = index.snapshot.redactions()
    print(f"secrets redacted: {sum(n for n, _ in redacted.values())} in {len(redacted)} files")
    for path, (_count, reason) in redacted.items():
        print(f"redacted {path}: {reason}")


def cmd_search(args: argparse.Namespace) -> int:
    from .search import InvalidInput, globs, search, validate
    from .sync import sync_workspace

    settings = settings_from(args)
    limit = args.limit if args.limit is not None else settings.search.limit
    mode = args.mode or settings.search.mode
    try:
        validate(args.query, limit, mode)
        globs("--include", args.include)
        globs("--exclude", args.exclude)
    except InvalidInput as exc:
        raise UsageError(str(exc)) from None
    index = _open(args)
    if not args.no_sync:
        stats = sync_workspace(index)
        if stats.error:
            print(f"warning: {stats.error}", file=sys.stderr)
    started = time.perf_counter()
    results = search(index, args.query, limit=limit, mode=mode, include=args.include,
                     exclude=args.exclude, languages=args.language)
    elapsed = time.perf_counter() - started
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
    index = _open(args)
    info = index.status()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    emb = info["embedding"]
    print(f"workspace:  {info['root']}")
    print(f"files:      {info['indexedFiles']} indexed")
    print(f"chunks:     {info['chunks']} ({info['pendingChunks']} waiting for vectors)")
    print(f"symbols:    {info['symbols']}")
    if index.settings.index.redact_secrets:
        print(f"secrets:    {info['redactions']} redacted in {info['redactedFiles']} files")
    else:
        print("secrets:    not redacted (redaction is off)")
    print(f"embedding:  {emb['provider']} {emb['model']} ({emb.get('dimension')} dimensions)")
    print(f"store:      {info['store']['uri']}")
    print(f"index dir:  {info['indexDir']}")
    if info.get("lastError"):
        print(f"last error: {info['lastError']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .sync import sync_workspace
    from .verify import verify

    index = _open(args)
    if not args.no_sync:
        sync_workspace(index)
    diff = verify(index)
    for label, items in (("missing", diff.missing), ("extra", diff.extra), ("duplicate", diff.duplicates)):
        for path, chunk in items[:50]:
            print(f"{label}: {path} chunk {chunk}")
    for path in diff.symbol_orphans[:50]:
        print(f"orphan symbols: {path}")
    print(f"{diff.files} files, {diff.chunks} chunks: " + ("index matches the files" if diff.ok else
          f"{len(diff.missing)} missing, {len(diff.extra)} extra, {len(diff.duplicates)} duplicated, "
          f"{len(diff.symbol_orphans)} files with orphan symbols"))
    return 0 if diff.ok else 1


def cmd_clear(args: argparse.Namespace) -> int:
    index = _open(args)
    index.clear()
    print(f"cleared the index of {index.root}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    return serve(args)


COMMANDS = {"index": cmd_index, "search": cmd_search, "status": cmd_status, "verify": cmd_verify,
            "clear": cmd_clear,
            "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                            format="%(levelname)s %(name)s: %(message)s")
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"code-context: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, not a traceback, for failures we did not foresee
        from .embedding import EmbeddingError
        from .store import StoreError

        if isinstance(exc, (StoreError, EmbeddingError)):
            print(f"code-context: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
