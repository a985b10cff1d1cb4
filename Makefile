# Weir's developer entry points. `make demo` and `make test` are the quick start; both run the
# idempotent `make setup` first, so they work on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/.weir/bin:$(CURDIR)/$(BIN):$(PATH)
SOURCES := libs/weir/src services/*/src deploy/local/src
PYTEST_FLAGS ?= -q

.PHONY: help setup demo down test unit integration lint format bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: ## install everything this machine needs (idempotent; run as root)
	@./deploy/local/setup.sh

demo: setup ## run the whole dataplane on the local cluster, in the foreground (Ctrl-C stops it)
	$(BIN)/weir dev up

down: ## stop a local cluster started with `weir dev up --detach` and remove its state
	$(BIN)/weir dev down

test: setup lint ## lint, type-check, then every unit and integration test
	$(BIN)/pytest $(PYTEST_FLAGS) tests/unit tests/bpf tests/integration

unit: ## only the fast tests (no processes, no root)
	$(BIN)/pytest $(PYTEST_FLAGS) tests/unit

integration: ## only the tests that run real binaries
	$(BIN)/pytest $(PYTEST_FLAGS) tests/integration

lint: ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(SOURCES)

format: ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## benchmarks; figures are printed and saved under .weir/bench/
	$(BIN)/python -m tests.bench.run

lock: ## refresh uv.lock after changing a pyproject.toml
	.weir/tools/uv/bin/uv lock --python /usr/bin/python3

clean: ## remove the venv and everything under .weir (tools, binaries, dev state)
	-$(BIN)/weir dev down
	rm -rf $(VENV) .weir
