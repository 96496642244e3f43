# mmfuse: `make demo` and `make test` set everything up from nothing (venv, install, data).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MMFUSE := $(VENV)/bin/mmfuse
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean-venv

# (re)install when the venv is missing or pyproject.toml changed
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing mmfuse and its dependencies into $(VENV) (first time: a few minutes)..."
	@set -o pipefail; $(PY) -m pip install -q -e ".[dev]" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	@touch $(STAMP)

demo: $(STAMP)
	$(MMFUSE) train experiment=fusion_comparison
	$(MMFUSE) compare

# two workers, one test file each at a time (module fixtures are shared within a file)
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

# style (ruff) and the house's layers (import-linter: pyproject.toml [tool.importlinter]; docs/ARCHITECTURE.md)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
