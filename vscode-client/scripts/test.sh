#!/usr/bin/env bash
# Tests of the VS Code client, run by `make test`: npm ci, type-check, lint, unit tests, the protocol test
# against the real Python server, the search view in headless Chromium, and packaging the .vsix (with the
# server wheel).
# Exits non-zero on any failure; exits 0 with a SKIPPED line when Node.js is not installed.
#
# Needs: Node 20+, the repo's .venv with the server installed (or CODE_CONTEXT_PYTHON), and Chromium at
# /usr/bin/chromium (Debian: apt-get install chromium; or CHROMIUM_PATH). No browser is ever downloaded.
# Without Chromium or the server the tests that need them skip, with a line above the closing line saying how
# to run them; with CI=true they fail instead (.ci/run installs Chromium).
set -euo pipefail

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "vscode-client: SKIPPED: node/npm not found; install Node.js 20+ to test the VS Code extension."
    exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> vscode-client: %s\n' "$*"; }

# Never let a package or tool fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export npm_config_update_notifier=false

step "npm ci ($(node --version))"
npm ci --no-audit --no-fund --loglevel=error

step "type-check"
npm run --silent typecheck

step "lint"
npm run --silent lint

step "build"
npm run --silent build

mkdir -p test-results
vitest() { npx vitest run --project "$1" --reporter=default --reporter=json --outputFile="test-results/$1.json"; }

step "unit tests"
vitest unit

step "protocol integration test (real Python server)"
vitest integration

step "search view in headless Chromium"
vitest browser

step "package (.vsix with the server wheel built from this repository, offline)"
npm run --silent package -- --out test-results/code-context.vsix </dev/null
if ! python3 -m zipfile -l test-results/code-context.vsix | grep -q 'extension/bundled/code_context_lsp-.*\.whl'; then
    echo "vscode-client: the .vsix carries no server wheel (extension/bundled/code_context_lsp-*.whl)" >&2
    exit 1
fi

# The closing line for all three runs, in the plain "N passed, N failed" form, after a line for each skipped
# test saying how to make it run.
node scripts/summary.mjs test-results unit integration browser
