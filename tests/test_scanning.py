"""Which files get indexed: ignore rules, secrets, binaries, sizes, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsp_server import scanning
from lsp_server.settings import IndexSettings


def _write(root: Path, rel: str, data: str | bytes = "x = 1\n") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


def _paths(root: Path, settings: IndexSettings | None = None) -> tuple[set[str], dict[str, str]]:
    report = scanning.scan(root, settings or IndexSettings())
    return {f.path for f in report.files}, report.skipped


def test_gitignore_at_every_depth_and_ignore_file(tmp_path: Path) -> None:
    _write(tmp_path, ".gitignore", "*.log\n/generated/\n")
    _write(tmp_path, "app/.gitignore", "local_*.py\n")
    _write(tmp_path, "app/.ignore", "scratch/\n")
    for rel in ["main.py", "debug.log", "generated/out.py", "app/core.py", "app/local_settings.py",
                "app/scratch/tmp.py", "lib/generated/keep.py"]:
        _write(tmp_path, rel)
    paths, _ = _paths(tmp_path)
    assert paths == {"main.py", "app/core.py", "lib/generated/keep.py"}


def test_gitignore_can_be_turned_off(tmp_path: Path) -> None:
    _write(tmp_path, ".gitignore", "ignored.py\n")
    _write(tmp_path, "ignored.py")
    assert "ignored.py" in _paths(tmp_path, IndexSettings(respect_gitignore=False))[0]


def test_always_skipped_dirs_locks_and_minified(tmp_path: Path) -> None:
    for rel in [".git/config.py", "node_modules/pkg/index.js", ".venv/lib/site.py", "venv/x.py",
                "build/out.py", "dist/app.js", "__pycache__/m.py", "src/app.js", "src/app.min.js",
                "package-lock.json", "poetry.lock", "src/ok.ts"]:
        _write(tmp_path, rel)
    paths, skipped = _paths(tmp_path)
    assert paths == {"src/app.js", "src/ok.ts"}
    assert skipped["package-lock.json"] == "lock file"
    assert skipped["src/app.min.js"] == "minified or generated"


def test_secrets_are_never_indexed(tmp_path: Path) -> None:
    secrets = [".env", ".env.production", "config/prod.env", "server.pem", "tls.key", "id_rsa", "id_ed25519.pub",
               ".npmrc", "credentials.json", "aws/credentials"]
    for rel in secrets:
        _write(tmp_path, rel, "SECRET=sk-canary-123\n")
    _write(tmp_path, "app.py")
    paths, skipped = _paths(tmp_path)
    assert paths == {"app.py"}
    for rel in secrets:
        if rel in skipped:
            assert skipped[rel] in ("may hold secrets", "not a known source or text type")


def test_size_limit_and_unknown_types(tmp_path: Path) -> None:
    _write(tmp_path, "big.py", "x = 1\n" * 50_000)
    _write(tmp_path, "small.py")
    _write(tmp_path, "photo.png", b"\x89PNG\r\n")
    paths, skipped = _paths(tmp_path, IndexSettings(max_file_size_kb=100))
    assert paths == {"small.py"}
    assert "larger than 100 KiB" in skipped["big.py"]
    assert skipped["photo.png"] == "not a known source or text type"


def test_include_exclude_settings(tmp_path: Path) -> None:
    for rel in ["src/a.py", "src/b.go", "tests/test_a.py", "docs/guide.md"]:
        _write(tmp_path, rel)
    paths, _ = _paths(tmp_path, IndexSettings(include=["src/**", "tests/**"], exclude=["*.go"]))
    assert paths == {"src/a.py", "tests/test_a.py"}


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    _write(tmp_path, "pkg/mod.py")
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "again")
    os.symlink(tmp_path, tmp_path / "pkg" / "root")
    paths, skipped = _paths(tmp_path)
    assert paths == {"pkg/mod.py"}
    assert any("symlink" in reason for reason in skipped.values())


def test_unreadable_directory_is_reported_not_fatal(tmp_path: Path) -> None:
    _write(tmp_path, "ok.py")
    _write(tmp_path, "locked/secret.py")
    (tmp_path / "locked").chmod(0)
    try:
        paths, skipped = _paths(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert "ok.py" in paths
    if os.geteuid() != 0:  # root reads everything
        assert "locked" in skipped


def test_should_index_single_paths(tmp_path: Path) -> None:
    _write(tmp_path, ".gitignore", "generated/\n")
    _write(tmp_path, "generated/gen.py")
    _write(tmp_path, "src/a.py")
    _write(tmp_path, ".env", "K=V\n")
    settings = IndexSettings()
    assert scanning.should_index(tmp_path, "src/a.py", settings) is None
    assert scanning.should_index(tmp_path, "generated/gen.py", settings) == "ignored by .gitignore"
    assert scanning.should_index(tmp_path, ".env", settings) == "may hold secrets"
    assert scanning.should_index(tmp_path, "node_modules/x.js", settings) == "excluded directory"
    assert scanning.should_index(tmp_path, "../escape.py", settings) == "excluded directory"
    assert "cannot stat" in scanning.should_index(tmp_path, "src/missing.py", settings)


def test_scripts_without_extension_take_the_language_of_their_shebang(tmp_path: Path) -> None:
    scripts = {
        "bin/deploytool": ("#!/usr/bin/env python3\nprint('deploy')\n", "python"),
        "bin/backup": ("#!/bin/bash\nset -e\ntar czf backup.tgz data\n", "bash"),
        "bin/serve": ("#!/usr/bin/env node\nconsole.log(1)\n", "javascript"),
        "bin/posix": ("#!/bin/sh -e\necho hi\n", "bash"),
        "bin/tasks": ("#!/usr/bin/env ruby\nputs 1\n", "ruby"),
        "bin/report": ("#!/usr/bin/perl -w\nprint 1;\n", "perl"),  # no grammar: line chunks
        "bin/pinned": ("#!/usr/bin/env -S python3.12 -u\nprint(1)\n", "python"),
        "bin/envvar": ("#!/usr/bin/env PYTHONPATH=. python3\nprint(1)\n", "python"),
    }
    for rel, (text, _) in scripts.items():
        _write(tmp_path, rel, text)
    _write(tmp_path, "bin/notes", "just some words\n")  # no shebang
    _write(tmp_path, "bin/unknown", "#!/opt/weird/interp\nx\n")
    _write(tmp_path, "bin/blob", b"#!\0\x01\x02binary")
    _write(tmp_path, "bin/huge", "#!/usr/bin/env python3\n" + "x = 1\n" * 300_000)
    _write(tmp_path, "tool.conf", "#!/usr/bin/env python3\n")  # an extension: the shebang is not read
    os.mkfifo(tmp_path / "bin" / "pipe")  # must not block the scan
    report = scanning.scan(tmp_path, IndexSettings())
    languages = {f.path: f.language for f in report.files}
    assert languages == {rel: language for rel, (_, language) in scripts.items()}
    assert report.skipped["bin/notes"] == report.skipped["bin/unknown"] == "not a known source or text type"
    assert report.skipped["bin/huge"].startswith("larger than")
    assert "bin/pipe" not in languages and "tool.conf" not in languages
    settings = IndexSettings()
    assert scanning.should_index(tmp_path, "bin/deploytool", settings) is None
    assert scanning.should_index(tmp_path, "bin/notes", settings) == "not a known source or text type"


def test_reinclude_beats_the_builtin_skip_list(tmp_path: Path) -> None:
    _write(tmp_path, ".gitignore", "build/*\n!build/keep_me.py\ngen/*\n!gen/keep.py\n")
    _write(tmp_path, "build/keep_me.py")
    _write(tmp_path, "build/output.py")
    _write(tmp_path, "build/sub/deep.py")
    _write(tmp_path, "gen/keep.py")
    _write(tmp_path, "gen/other.py")
    _write(tmp_path, "pkg/.gitignore", "!dist/shipped.js\n")  # a deeper ignore file, relative to pkg/
    _write(tmp_path, "pkg/dist/shipped.js", "export const x = 1;\n")
    _write(tmp_path, "pkg/dist/bundle.js", "export const y = 2;\n")
    _write(tmp_path, "dist/plain.py")  # no re-include: still skipped
    _write(tmp_path, ".git/config.py")
    # As in git, a deeper ignore file overrides a shallower one.
    _write(tmp_path, ".ignore", "scratch_*.py\n")
    _write(tmp_path, "app/.gitignore", "!scratch_kept.py\n")
    _write(tmp_path, "app/scratch_kept.py")
    _write(tmp_path, "app/scratch_gone.py")
    paths, _ = _paths(tmp_path)
    assert paths == {"build/keep_me.py", "gen/keep.py", "pkg/dist/shipped.js", "app/scratch_kept.py"}
    settings = IndexSettings()
    assert scanning.should_index(tmp_path, "build/keep_me.py", settings) is None
    assert scanning.should_index(tmp_path, "pkg/dist/shipped.js", settings) is None
    assert scanning.should_index(tmp_path, "build/output.py", settings) == "ignored by .gitignore"
    assert scanning.should_index(tmp_path, "dist/plain.py", settings) == "excluded directory"
    # With ignore files turned off there is no re-include: the built-in skip applies.
    assert "build/keep_me.py" not in _paths(tmp_path, IndexSettings(respect_gitignore=False))[0]


def test_skipped_folders_are_not_walked_unless_a_reinclude_names_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A generic whitelist (`!*/`, `!*.py`) and bare names do not open node_modules; a path
    # through it does, and then only that branch is walked.
    _write(tmp_path, ".gitignore", "*.log\n!keep.log\n!*/\n!*.py\n!node_modules/wanted/index.js\n")
    _write(tmp_path, "node_modules/wanted/index.js", "module.exports = 1;\n")
    _write(tmp_path, "node_modules/wanted/other.js", "module.exports = 2;\n")
    _write(tmp_path, "node_modules/big/lib.py")
    _write(tmp_path, "vendor/lib/x.py")
    _write(tmp_path, "src/main.py")
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: os.PathLike[str] | str) -> object:
        listed.append(Path(path).relative_to(tmp_path).as_posix())
        return real_scandir(path)

    monkeypatch.setattr(scanning.os, "scandir", scandir)
    paths, _ = _paths(tmp_path)
    assert paths == {"src/main.py", "node_modules/wanted/index.js"}
    assert sorted(listed) == [".", "node_modules", "node_modules/wanted", "src"]


def test_shebang_scripts_and_reincluded_files_are_chunked_searched_and_outlined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real engine (Milvus Lite, hash embedder): a full sync and an editor save."""
    from lsp_server.index import WorkspaceIndex
    from lsp_server.search import search
    from lsp_server.settings import parse
    from lsp_server.sync import sync_paths, sync_workspace

    monkeypatch.setenv("CODE_CONTEXT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ws"
    _write(root, "bin/deploytool", "#!/usr/bin/env python3\ndef rollout_canary_release(fleet):\n"
                                   "    return [host for host in fleet if host.canary]\n")
    _write(root, "bin/report", "#!/usr/bin/perl\nprint \"quarterly ledger summary\\n\";\n")
    _write(root, ".gitignore", "build/*\n!build/keep_me.py\n")
    _write(root, "build/keep_me.py", "def generated_but_kept_schema():\n    return {}\n")
    _write(root, "build/output.py", "def generated_and_ignored():\n    return {}\n")
    index = WorkspaceIndex(root, parse({"embedding": {"provider": "hash"}})[0])
    try:
        assert not sync_workspace(index).error
        assert sorted(index.files.all()) == ["bin/deploytool", "bin/report", "build/keep_me.py"]

        def top(query: str) -> tuple[str, str, str | None]:
            hit = search(index, query, mode="keyword", limit=1)[0]
            return hit.path, hit.language, hit.symbol

        # python has a grammar: a definition chunk and a symbol; perl is split by lines.
        assert top("rollout canary release") == ("bin/deploytool", "python", "rollout_canary_release")
        assert top("quarterly ledger summary")[:2] == ("bin/report", "perl")
        assert [s.name for s in index.symbols.symbols_in("bin/deploytool")] == ["rollout_canary_release"]
        assert top("generated but kept schema")[0] == "build/keep_me.py"

        # An editor save of a new script and of the re-included file takes the same languages.
        _write(root, "bin/rotate", "#!/bin/bash\nrotate_access_logs() {\n  gzip /var/log/app.log\n}\n")
        _write(root, "build/keep_me.py", "def regenerated_schema_version():\n    return 2\n")
        stats = sync_paths(index, ["bin/rotate", "build/keep_me.py", "build/output.py"])
        assert stats.changed_files == 2 and stats.skipped == {"build/output.py": "ignored by .gitignore"}
        assert top("rotate access logs") == ("bin/rotate", "bash", "rotate_access_logs")  # a tree-sitter chunk
        assert top("regenerated schema version")[0] == "build/keep_me.py"
    finally:
        index.close()
