# The one task runner, used the same way locally and in CI.
# `make dev` and `make test` each bootstrap .venv; a second run skips the installs
# (the stamp file is keyed on the hash of pyproject.toml and constraints.txt).
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
STACK ?= staging
BASE ?= origin/main
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: dev test lint typecheck unit integration e2e smoke package inventory diff-inventory security-scan cost bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[local,dev,infra]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

## dev: the local platform on embedded defaults (moto S3/SQS, worker, API, web page)
dev: $(STAMP)
	$(BIN)/ragctl dev

## test: lint, types and every test layer
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy service pipelines infra tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

e2e: $(STAMP)
	$(BIN)/python -m pytest -q tests/e2e

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
