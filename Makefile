# copier-fastapi-modular: the template repository's commands. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEST ?= demo
PORT ?= 8000
WORKERS ?= 2
# make bench: seconds per measured run, open connections
DURATION ?= 5
CONNECTIONS ?= 50
# make bench: a git directory holding the reference template's pinned commit (this
# machine's mirror when there is one; empty: the copy cached under .bench/, else git clone)
BENCH_REFERENCE_REPO ?= $(wildcard /work/.mirror/fastapi+full-stack-fastapi-template/repo)
export UV_PYTHON_DOWNLOADS := never
# Silences Material's end-of-life banner, printed on every docs build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: help bootstrap demo test test-fast lint format bench docs docs-build release clean

help: ## List the available commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

$(BIN)/.bootstrapped: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv sync --quiet --python $(BIN)/python
	@touch $@

bootstrap: $(BIN)/.bootstrapped ## Create .venv with copier, pytest-copie, ruff, uv and mkdocs-material

demo: bootstrap ## Render the default variant into ./demo (DEST=...), migrate it and serve it on 127.0.0.1:$(PORT)
	scripts/demo.sh "$(DEST)" "$(PORT)"

test: bootstrap ## The whole test suite: docs built strictly, every variant rendered, installed and checked
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/python -m tests.servers postgresql mysql redis
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup

test-fast: bootstrap ## Render checks and questionnaire tests only (no rendered project installs)
	$(BIN)/pytest -n $(WORKERS) -m "not slow"

lint: bootstrap ## Lint and format-check the template's own Python (tests, scripts)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: bootstrap ## Format the template's own Python
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: bootstrap ## Performance figures: render, cold start, PostgreSQL variant beside the reference template and raw asyncpg, sustained-load tail, Redis throttle, jobs
	BENCH_REFERENCE_REPO="$(BENCH_REFERENCE_REPO)" $(BIN)/python -m bench.run --duration $(DURATION) --connections $(CONNECTIONS) $(BENCH_ARGS)

docs: bootstrap ## Serve the documentation site on http://127.0.0.1:8001 with live reload
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

docs-build: bootstrap ## Build the documentation site strictly into site/
	$(BIN)/mkdocs build --strict

release: bootstrap ## Cut release VERSION=X.Y.Z of HEAD: CHANGELOG section, releases.toml, tag
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=X.Y.Z" >&2; exit 1; }
	$(BIN)/python scripts/release.py cut "$(VERSION)"

clean: ## Remove the virtualenv and the demo project
	rm -rf $(VENV) $(DEST) site
