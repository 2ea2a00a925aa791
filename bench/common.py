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
