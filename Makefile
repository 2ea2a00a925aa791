# Every target is idempotent. The virtual environment lives in .venv/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-python test-client lint bench bench-smoke clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned to the CPU build in pip's find-links; see pyproject.toml.
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

# Index this repository with the bundled offline model, then run two example searches.
run: install
	$(VENV)/bin/code-context index .
	@echo '--- search: "where do we retry failed embedding requests"'
	$(VENV)/bin/code-context search . "where do we retry failed embedding requests" --limit 5 --no-sync
	@echo '--- search: "split identifier", keyword mode'
	$(VENV)/bin/code-context search . "split identifier" --mode keyword --limit 5 --no-sync

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider
	bash vscode-client/scripts/test.sh

# Lint (ruff) and type (mypy) gates; both must be clean.
lint: install
	$(VENV)/bin/ruff check lsp_server tests bench
	$(VENV)/bin/mypy

test-python: install
	$(PY) -m pytest -q -p no:cacheprovider

test-client:
	bash vscode-client/scripts/test.sh

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build *.egg-info
