"""What every benchmark shares: the machine description, percentiles, corpora."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sysconfig
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.machine()}"


MODES = ("keyword", "semantic", "hybrid")

# What someone might ask of a Python code base: plain English and identifier-like.
QUERIES = [
    "parse a date string into a datetime", "read configuration from an ini file", "retry a failed network request",
    "compress data with gzip", "walk a directory tree recursively", "escape html special characters",
    "send an email over smtp", "decode base64 data", "format a number with thousands separators",
    "create a temporary file", "compare two sequences and show differences", "thread pool that runs tasks",
    "lock to protect shared state", "parse command line arguments", "open a url and read the response",
    "serialize an object to json", "compute a hash digest of a file", "copy a file preserving metadata",
    "split a path into directory and file name", "match a string against a regular expression",
    "split identifier", "get content charset", "read until end of stream", "build a request header",
    "load module from path", "cache results of a function", "convert bytes to text with an encoding",
    "iterate over lines of a file", "sort items by key", "raise an error when the value is invalid",
    "timeout", "ArgumentParser add argument", "json dumps indent", "socket connect", "TemporaryDirectory",
    "urlopen", "event loop run until complete", "logging handler emit record", "tarfile extract", "csv reader",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f}, p95 {percentile(values, 0.95):.3f} (n={len(values)})"


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def copy_stdlib(dest: Path, packages: list[str]) -> Path:
    """A private copy of some stdlib packages, so nothing outside the benchmark is touched."""
    src = stdlib_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in packages:
        path = src / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__", "test", "tests"))
        elif path.with_suffix(".py").is_file():
            shutil.copy2(path.with_suffix(".py"), dest / f"{name}.py")
    return dest


# --- the performance corpus: real code, stdlib first, then the venv's site-packages ----------

# Bytes of source per chunk (stdlib ~650, site-packages ~610 at 800-character chunks; 600
# makes 27 % more chunks of the same code): used to pick files for a wanted size; the chunks
# actually indexed are reported.
BYTES_PER_CHUNK = 500
_TEST_DIRS = frozenset({"test", "tests", "idle_test"})


def site_packages_dir() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def real_code_files() -> list[tuple[Path, str, int]]:
    """(source file, destination path, size) of every file the indexer would take, in a fixed
    order: the stdlib (without its test suites), then the installed site-packages."""
    from lsp_server import scanning
    from lsp_server.settings import IndexSettings

    out: list[tuple[Path, str, int]] = []
    for prefix, root in (("stdlib", stdlib_dir()), ("site", site_packages_dir())):
        report = scanning.scan(root, IndexSettings())
        for f in sorted(report.files, key=lambda f: f.path):
            if _TEST_DIRS.isdisjoint(f.path.split("/")[:-1]):
                out.append((root / f.path, f"{prefix}/{f.path}", f.size))
    return out


def copy_real_code(dest: Path, target_chunks: int) -> tuple[int, int]:
    """Copy about target_chunks chunks' worth of real code into dest; returns (files, bytes)."""
    budget = target_chunks * BYTES_PER_CHUNK
    files = used = 0
    for src, rel, size in real_code_files():
        if used >= budget:
            break
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        files += 1
        used += size
    return files, used
