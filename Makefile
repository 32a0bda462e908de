# lavahub: `make up` starts the platform, `make test` runs the whole suite.
# Each installs what it needs first; a second `make install` only checks stamps.

# Users' workspaces and job workers run from this Python as their own OS accounts, so it must
# be one every account may run: the system's, not one under root's closed home (pyenv's).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .stamps
CONFIG ?=

.PHONY: install venv-interpreter chromium kube-apiserver up test test-unit test-integration test-kubernetes lint format bench clean

install: venv-interpreter $(STAMPS)/python $(STAMPS)/node

# a .venv made from another Python than $(PYTHON) (an older checkout's) is made again
venv-interpreter:
	@if [ -e $(BIN)/python ] && [ "$$(readlink -f $(BIN)/python)" != "$$(readlink -f "$$(command -v $(PYTHON))")" ]; then \
	  echo "make: .venv was made from $$(readlink -f $(BIN)/python), not $(PYTHON): making it again"; \
	  rm -rf $(VENV) $(STAMPS)/python; fi

$(STAMPS)/python: pyproject.toml extensions/lavahub-jupyter/pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e extensions/lavahub-jupyter
	@touch $@

$(STAMPS)/node: package.json package-lock.json
	@mkdir -p $(STAMPS)
	@command -v npm >/dev/null || { echo "npm is needed for configurable-http-proxy: apt-get install nodejs npm"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser of its own).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# A real kube-apiserver (Debian's Kubernetes 1.20 source, built once per machine into
# LAVAHUB_CACHE, default ~/.cache/lavahub) and Debian's etcd, for tests/kubernetes; it
# returns at once when the binary is cached.
kube-apiserver:
	@tests/kubernetes/build-apiserver

up: install
	$(BIN)/lavahub up $(if $(CONFIG),--config $(CONFIG))

test: install kube-apiserver chromium
	@tests/run-pytest $(BIN)/pytest

test-unit: install
	@tests/run-pytest $(BIN)/pytest tests/unit

test-integration: install
	@tests/run-pytest $(BIN)/pytest tests/integration tests/security

test-kubernetes: install kube-apiserver
	@tests/run-pytest $(BIN)/pytest tests/kubernetes

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install kube-apiserver
	$(BIN)/python benchmarks/spawn.py && $(BIN)/python benchmarks/jobs.py && $(BIN)/python benchmarks/kube_spawn.py && $(BIN)/python benchmarks/volcano.py

clean:
	rm -rf $(VENV) $(STAMPS) node_modules .pytest_cache .ruff_cache
