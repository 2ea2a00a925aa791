"""The code-context command as a user runs it: real processes, real store."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "workspace"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CODE_CONTEXT_CACHE_DIR": str(tmp_path / "cache"), "CODE_CONTEXT_PROVIDER": "hash"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(FIXTURE, root)
    return root


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lsp_server.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_index_search_status(workspace: Path, env: dict[str, str]) -> None:
    out = run(env, "index", str(workspace))
    assert out.returncode == 0, out.stderr
    summary = out.stdout
    assert "files: 7" in summary and "embedded this run: " in summary and "seconds: " in summary
    again = run(env, "index", str(workspace))
    assert "embedded this run: 0" in again.stdout and "changed files: 0" in again.stdout

    out = run(env, "search", str(workspace), "retry failed http requests", "--limit", "3", "--no-sync")
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("src/http_client.py:") and "fetch_with_retry" in first

    out = run(env, "search", str(workspace), "matrix multiply", "--json", "--mode", "keyword")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["path"] == "native/matrix.rs"
    assert set(rows[0]) == {"path", "start_line", "end_line", "score", "language", "symbol", "content"}
    assert rows[0]["language"] == "rust" and rows[0]["start_line"] >= 1

    out = run(env, "status", str(workspace))
    assert "7 indexed" in out.stdout and "hash" in out.stdout and "milvus.db" in out.stdout


@pytest.mark.parametrize("args,message", [
    (["index", "/no/such/folder"], "no such folder"),
    (["search", "/no/such/folder", "x"], "no such folder"),
    (["search", "{ws}/README.md", "x"], "not a folder"),
    (["search", "{ws}", ""], "query"),
    (["search", "{ws}", "   "], "query"),
    (["search", "{ws}", "x", "--limit", "0"], "limit"),
    (["search", "{ws}", "x", "--limit", "101"], "limit"),
    (["search", "{ws}", "x", "--limit", "ten"], "--limit"),
    (["search", "{ws}", "x", "--mode", "fuzzy"], "mode"),
    (["index", "{ws}", "--provider", "nope"], "--provider"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(workspace: Path, env: dict[str, str], args: list[str], message: str) -> None:
    out = run(env, *[a.replace("{ws}", str(workspace)) for a in args])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("code-context: error:") and message in lines[0], out.stderr
    assert out.stdout == ""


def test_bad_environment_setting_exits_2(workspace: Path, env: dict[str, str]) -> None:
    out = run({**env, "CODE_CONTEXT_BATCH_SIZE": "many"}, "index", str(workspace))
    assert out.returncode == 2 and "CODE_CONTEXT_BATCH_SIZE" in out.stderr


# ---------------------------------------------------------------------------------------
# what the commands print on stderr (issue 18, item 5)

SUMMARY = re.compile(r"\d+ results in \d+ ms")


def test_search_with_the_local_model_prints_only_results_and_their_summary(workspace: Path,
                                                                           env: dict[str, str]) -> None:
    # The bundled model: transformers drew a "Loading weights" bar on stderr at every load.
    local = {**env, "CODE_CONTEXT_PROVIDER": "local"}
    out = run(local, "search", str(workspace), "retry failed http requests", "--limit", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("src/http_client.py:")
    assert SUMMARY.fullmatch(out.stderr.strip()), out.stderr


def test_a_locked_store_still_answers_searches_from_its_saved_index_and_refuses_writes_in_one_line(
        workspace: Path, env: dict[str, str], tmp_path: Path) -> None:
    # Another process holds the folder's Milvus Lite store without owning the folder (an older
    # Code Context, or a script). The index saved at the last clean close still answers a
    # search; anything that writes fails with one line (Milvus Lite used to
    # log a traceback for each attempt to open it, before our own line and a duplicate warning).
    assert run(env, "index", str(workspace)).returncode == 0
    store = json.loads(run(env, "status", str(workspace), "--json").stdout)["store"]["uri"]
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pymilvus import MilvusClient\n"
                               "MilvusClient(uri=sys.argv[1]); print('held', flush=True); time.sleep(120)", store],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        searched = run(env, "search", str(workspace), "retry", "--no-sync")
        forced = run(env, "index", str(workspace), "--force")
    finally:
        holder.kill()
        holder.wait()
    assert searched.returncode == 0, searched.stderr
    assert searched.stdout.startswith("src/http_client.py:")
    assert SUMMARY.fullmatch(searched.stderr.splitlines()[-1]) and "Traceback" not in searched.stderr
    assert forced.returncode == 1
    lines = forced.stderr.splitlines()
    assert lines[-1].startswith("code-context: error: the vector store at ")
    assert f"in use by another process (pid {holder.pid})" in lines[-1]
    assert not any("Traceback" in line for line in lines), forced.stderr


def test_index_progress_is_plain_lines_when_stderr_is_no_terminal(workspace: Path, env: dict[str, str]) -> None:
    out = run(env, "index", str(workspace))
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "files 0/7"
    assert re.fullmatch(r"files 7/7, \d+\.\d s", lines[1]), lines
    assert re.fullmatch(r"chunks embedded 8/8, \d+\.\d s", lines[-1]), lines
    assert "\r" not in out.stderr and "\x1b" not in out.stderr
    assert out.stdout.startswith("files: 7  chunks: 8")


def test_index_progress_on_a_terminal_is_one_line_redrawn(workspace: Path, env: dict[str, str]) -> None:
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lsp_server.cli", "index", str(workspace)], env=env,
                            stdout=subprocess.PIPE, stderr=child, text=False)
    os.close(child)
    shown = b""
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(main)
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    assert stdout.decode().startswith("files: 7  chunks: 8")  # the summary stays on stdout
    text = shown.decode()
    assert "\n" not in text, text  # one line, redrawn: files, then chunks embedded
    draws = [d.removesuffix("\x1b[K") for d in text.split("\r") if d and d != "\x1b[K"]
    assert draws[0].endswith("files 0/7")
    assert any(re.fullmatch(r"\[#{24}\] files 7/7, \d+\.\d s", d) for d in draws), draws
    assert re.fullmatch(r"\[#{24}\] chunks embedded 8/8, \d+\.\d s", draws[-1]), draws
    assert text.endswith("\r\x1b[K")  # cleared before the summary


def test_progress_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsp_server import cli

    clock = [100.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    bar = cli._ProgressBar(out)  # StringIO is no terminal: plain lines
    bar(100, 1000, "scanning")  # 100 unchanged files: not part of the rate
    clock[0] += 10
    bar(300, 1000, "300/1000 files")
    clock[0] += 10
    bar(500, 1000, "500/1000 files")
    clock[0] += 1  # within PLAIN_EVERY: not shown
    bar(520, 1000, "520/1000 files")
    clock[0] += 4
    bar(1000, 1000, "1000/1000 files")
    clock[0] += 30
    bar(600, 2400, "embedding 600/2400 chunks")  # embedding began when reading ended
    assert out.getvalue().splitlines() == [
        "files 100/1000",
        "files 300/1000  20/s  ETA 0:35",
        "files 500/1000  20/s  ETA 0:25",
        "files 1000/1000, 25.0 s",
        "chunks embedded 600/2400  20/s  ETA 1:30",
    ]


def test_index_names_redacted_files_and_status_counts_them(workspace: Path, env: dict[str, str]) -> None:
    """Issue 17: totals and each file with its reason, never the secret; `index -v` works as the
    README says, and so does `-v index`; the switch to turn redaction off."""
    sys.path.insert(0, str(Path(__file__).parent))
    from secret_fixtures import cases

    chosen = [c for c in cases() if c.name in ("rsa_key", "aws", "github_fine_grained")]
    for case in chosen:
        (workspace / case.path).parent.mkdir(parents=True, exist_ok=True)
        (workspace / case.path).write_text(case.text)
    secrets = [s for c in chosen for s in c.secrets]

    out = run(env, "index", str(workspace), "-v")
    assert out.returncode == 0, out.stderr
    assert "secrets redacted: 4 in 3 files" in out.stdout
    for case in chosen:
        line = next(x for x in out.stdout.splitlines() if x.startswith(f"redacted {case.path}: "))
        assert all(kind in line for kind in case.kinds), line
    assert "redacted 4 secrets" not in out.stderr and "redacted 2 secrets in cloud/aws.py" in out.stderr  # -v logs
    assert not any(s in out.stdout + out.stderr for s in secrets)

    again = run(env, "-v", "index", str(workspace))
    assert again.returncode == 0 and "secrets redacted: 4 in 3 files" in again.stdout  # from the snapshot
    assert "INFO" in again.stderr

    status = run(env, "status", str(workspace), "-v")
    assert "secrets:    4 redacted in 3 files" in status.stdout, status.stdout
    info = json.loads(run(env, "status", str(workspace), "--json").stdout)
    assert info["redactions"] == 4 and info["redactedFiles"] == 3

    found = run(env, "search", str(workspace), "upload release artifacts", "--mode", "keyword", "--json", "--no-sync")
    top = json.loads(found.stdout.splitlines()[0])
    assert top["path"] == "cloud/aws.py" and "[REDACTED:aws-access-key]" in top["content"]
    assert run(env, "verify", str(workspace), "--no-sync").returncode == 0

    # Turned off (flag or environment), the index is rebuilt with the secrets as they are.
    off = run(env, "index", str(workspace), "--no-redact-secrets")
    assert off.returncode == 0 and "secrets: not redacted" in off.stdout and "changed files: 10" in off.stdout
    found = run({**env, "CODE_CONTEXT_REDACT_SECRETS": "0"}, "search", str(workspace), "upload release artifacts",
                "--mode", "keyword", "--json", "--no-sync")
    assert chosen[1].secrets[0] in json.loads(found.stdout.splitlines()[0])["content"]
    bad = run({**env, "CODE_CONTEXT_REDACT_SECRETS": "maybe"}, "status", str(workspace))
    assert bad.returncode == 2 and "CODE_CONTEXT_REDACT_SECRETS" in bad.stderr


def test_settings_flags_come_from_the_settings_schema() -> None:
    """Every flag is a real setting with its type; flags win over variables, variables over defaults."""
    from lsp_server import cli

    args = cli.build_parser().parse_args(["status", ".", "--timeout", "7.5", "--max-retries", "1",
                                          "--max-tokens-per-request", "500", "--no-redact-secrets"])
    settings = cli.settings_from(args, {"CODE_CONTEXT_MAX_RETRIES": "3", "CODE_CONTEXT_CONCURRENCY": "2"})
    emb = settings.embedding
    assert (emb.timeout, emb.max_retries, emb.max_tokens_per_request, emb.concurrency) == (7.5, 1, 500, 2)
    assert settings.index.redact_secrets is False
    for flag, section, name, _ in cli.SETTING_FLAGS:
        assert cli._setting(section, name).name == name, flag


@pytest.mark.parametrize("args,env_name,message", [
    (["--timeout", "0"], None, "embedding.timeout"),
    (["--timeout", "soon"], None, "--timeout"),
    ([], "CODE_CONTEXT_MAX_RETRIES", "CODE_CONTEXT_MAX_RETRIES must be an integer"),
    ([], "CODE_CONTEXT_TIMEOUT", "CODE_CONTEXT_TIMEOUT must be a number"),
])
def test_bad_setting_values_exit_2(workspace: Path, env: dict[str, str], args: list[str], env_name: str | None,
                                   message: str) -> None:
    out = run({**env, **({env_name: "lots"} if env_name else {})}, "status", str(workspace), *args)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
