"""Starting the language server: logging, a protected stdout, stdio or TCP.

Beside the CLI (`code-context serve`, `python -m lsp_server`), apart from the handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import sys
from typing import BinaryIO

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcInvalidParams

from .server import SERVER, CodeContextServer

log = logging.getLogger("lsp_server.server")
# Info lines that reach the client's log as well as stderr: indexing summaries and edits.
FORWARDED_INFO = frozenset({"lsp_server.server", "lsp_server.host", "lsp_server.shared_folder"})


class _ClientLogHandler(logging.Handler):
    """Forwards warnings, and this module's info, to the client's window/logMessage."""

    LEVELS = {logging.ERROR: lsp.MessageType.Error, logging.WARNING: lsp.MessageType.Warning,
              logging.INFO: lsp.MessageType.Info}

    def __init__(self, ls: CodeContextServer) -> None:
        super().__init__(logging.INFO)
        self.ls = ls
        self.addFilter(lambda r: r.levelno >= logging.WARNING or r.name in FORWARDED_INFO)

    def emit(self, record: logging.LogRecord) -> None:
        loop = self.ls.loop
        if loop is None or loop.is_closed():
            return
        kind = self.LEVELS.get(min(record.levelno, logging.ERROR), lsp.MessageType.Log)
        params = lsp.LogMessageParams(type=kind, message=self.format(record))
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.ls.window_log_message, params)


def _configure_logging(level_name: str, log_file: str | None) -> None:
    level = getattr(logging, level_name.upper())
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    # Other libraries (pygls logs every message body at info) speak up from warning on,
    # unless the user asked for debug.
    logging.basicConfig(level=logging.DEBUG if level == logging.DEBUG else logging.WARNING,
                        handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lsp_server").setLevel(level)
    # pygls logs a traceback for every error response: a client's bad params are no server fault.
    logging.getLogger("pygls.protocol.json_rpc").addFilter(
        lambda r: not (r.exc_info and isinstance(r.exc_info[1], JsonRpcInvalidParams)))
    logging.getLogger("lsp_server").addHandler(_ClientLogHandler(SERVER))


def _protocol_stdout() -> BinaryIO:
    """A private copy of stdout for the protocol; fd 1 then points at stderr, so a stray
    print, in a library or a child process, cannot corrupt the message stream."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "wb")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(args: argparse.Namespace) -> int:
    _configure_logging(args.log_level, args.log_file)
    try:
        if args.tcp:
            if not _is_loopback(args.host):
                log.warning("listening on %s: anyone who can reach it can read your code", args.host)
            log.info("listening on %s:%d (TCP)", args.host, args.port)
            SERVER.start_tcp(args.host, args.port)
        else:
            SERVER.start_io(sys.stdin.buffer, _protocol_stdout())
    finally:
        # The client went away, perhaps without shutdown: running syncs stop between batches,
        # and followers of our folders elect a new owner.
        for folder in SERVER.folders.values():
            if folder.shared is not None:
                folder.shared.close()
    return 0
