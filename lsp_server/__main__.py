"""`python -m lsp_server`: the language server, the same as `code-context serve`."""

from __future__ import annotations

import argparse
import sys

from .cli import add_serve_arguments
from .launch import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lsp_server",
                                     description="Code Context language server (stdio by default).")
    add_serve_arguments(parser)
    return serve(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
