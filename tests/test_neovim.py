"""Neovim as the client: the Lua of docs/neovim.md, run headless against the real server.

Written for Neovim 0.7 (Debian 12's), which has no vim.lsp.start and no `nvim -l`: the
script runs through `-c 'luafile ...'`, writes what the server answered to a JSON file
and quits; the assertions are made here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NVIM = shutil.which("nvim")
pytestmark = [pytest.mark.skipif(NVIM is None, reason="nvim is not installed"), pytest.mark.timeout(120)]

SCRIPT = r"""
local result = {}
local function run()
  local root = os.getenv("CC_WORKSPACE")
  local client_id = vim.lsp.start_client({
    name = "code-context",
    cmd = { os.getenv("CC_PYTHON"), "-m", "lsp_server" },
    cmd_env = { CODE_CONTEXT_CACHE_DIR = os.getenv("CODE_CONTEXT_CACHE_DIR") },
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = "workspace" } },
    init_options = { embedding = { provider = "hash" } },
  })
  assert(client_id, "start_client failed")
  vim.cmd("edit " .. vim.fn.fnameescape(root .. "/src/http_client.py"))
  vim.lsp.buf_attach_client(0, client_id)
  local client = vim.lsp.get_client_by_id(client_id)
  assert(vim.wait(30000, function() return client.initialized end, 50), "not initialized")

  for _ = 1, 300 do
    local answer = client.request_sync("codeContext/status", vim.empty_dict(), 10000, 0)
    result.status = answer and answer.result
    if result.status and result.status.folders[1].state == "idle" then break end
    vim.wait(100)
  end
  result.search = client.request_sync("codeContext/search",
    { query = "retry failed http requests", limit = 3 }, 10000, 0).result
  result.symbols = client.request_sync("workspace/symbol", { query = "fetch_with_retry" }, 10000, 0).result
  local bad = client.request_sync("codeContext/search", { query = "" }, 10000, 0)
  result.bad_search_error = bad and bad.err
  client.stop()
  vim.wait(5000, function() return client.is_stopped() end, 50)
end

local ok, err = pcall(run)
if not ok then result.error = tostring(err) end
local file = io.open(os.getenv("CC_OUT"), "w")
file:write(vim.fn.json_encode(result))
file:close()
vim.cmd("qa!")
"""


def test_neovim_07_client_searches(workspace: Path, cache_dir: Path, tmp_path: Path) -> None:
    script, out = tmp_path / "client.lua", tmp_path / "out.json"
    script.write_text(SCRIPT)
    home = tmp_path / "home"  # keep Neovim's log and state out of the real home
    env = {**os.environ, "CC_PYTHON": sys.executable, "CC_WORKSPACE": str(workspace), "CC_OUT": str(out),
           "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "XDG_STATE_HOME": str(home / "state"),
           "XDG_DATA_HOME": str(home / "data"), "XDG_CONFIG_HOME": str(home / "config")}
    assert NVIM is not None
    subprocess.run([NVIM, "--headless", "--clean", "-c", f"luafile {script}"], env=env, timeout=100,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)

    result = json.loads(out.read_text())
    assert "error" not in result, result["error"]
    folder = result["status"]["folders"][0]
    assert folder["state"] == "idle" and folder["indexedFiles"] == 7
    assert folder["uri"] == workspace.as_uri()

    hits = result["search"]["results"]
    assert 0 < len(hits) <= 3 and result["search"]["partial"] is False
    top = hits[0]
    assert top["uri"] == (workspace / "src" / "http_client.py").as_uri()
    assert top["range"]["start"]["line"] <= 17 < 28 < top["range"]["end"]["line"]

    assert result["symbols"][0]["name"] == "fetch_with_retry"
    assert result["symbols"][0]["location"]["uri"].endswith("/src/http_client.py")
    assert result["bad_search_error"]["code"] == -32602
