# lavahub: `make up` starts the platform, `make test` runs the whole suite.
# Each installs what it needs first; a second `make install` only checks stamps.

# Users' workspaces and job workers run from this Python as their own OS accounts, so it must
# be one every account may run: the system's, not one under root's closed home (pyenv's).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .stamps
CONFIG ?=

.PHONY: install lab-types chart-schema venv-interpreter chromium kube-apiserver up test test-unit test-integration test-kubernetes lint format bench clean

# the lab extension (extensions/lavahub-jupyter): its frontend is built again only when its sources change
LAB         := extensions/lavahub-jupyter
LAB_SOURCES := $(LAB)/package.json $(LAB)/yarn.lock $(LAB)/.yarnrc.yml $(LAB)/tsconfig.json \
               $(wildcard $(LAB)/src/*.ts $(LAB)/style/* $(LAB)/schema/*.json)

install: venv-interpreter $(STAMPS)/python $(STAMPS)/node

# a .venv made from another Python than $(PYTHON) (an older checkout's) is made again
venv-interpreter:
	@if [ -e $(BIN)/python ] && [ "$$(readlink -f $(BIN)/python)" != "$$(readlink -f "$$(command -v $(PYTHON))")" ]; then \
	  echo "make: .venv was made from $$(readlink -f $(BIN)/python), not $(PYTHON): making it again"; \
	  rm -rf $(VENV) $(STAMPS)/platform $(STAMPS)/python; fi

# the frontend's TypeScript types of the jobs API, from the service's OpenAPI document
# (tests/extensions/test_lab_frontend.py fails when they are out of date)
lab-types: install
	$(BIN)/python -m services.jobs.openapi > $(LAB)/node_modules/.jobs-openapi.json
	cd $(LAB) && node_modules/.bin/openapi-typescript node_modules/.jobs-openapi.json --output src/jobs-api.d.ts

# the Helm chart's values.schema.json, from the platform config's own JSON Schema
# (tests/unit/test_chart.py fails when it is out of date)
chart-schema: install
	$(BIN)/lavahub config schema --helm > helm/lavahub/values.schema.json

$(STAMPS)/platform: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# jlpm is JupyterLab's pinned Yarn, from the platform's environment (the jupyter-builder package)
$(STAMPS)/labextension: $(LAB_SOURCES) | $(STAMPS)/platform
	cd $(LAB) && PATH="$(abspath $(BIN)):$$PATH" jlpm install --immutable && PATH="$(abspath $(BIN)):$$PATH" jlpm build:prod
	@touch $@

# the extension's wheel carries the built frontend and the server extension's config into .venv
$(STAMPS)/python: $(STAMPS)/labextension $(LAB)/pyproject.toml $(LAB)/install.json $(wildcard $(LAB)/jupyter-config/server-config/*.json)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pip install --quiet -e $(LAB)
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
	$(BIN)/python benchmarks/spawn.py && $(BIN)/python benchmarks/cells.py && $(BIN)/python benchmarks/jobs.py && $(BIN)/python benchmarks/kube_spawn.py && $(BIN)/python benchmarks/volcano.py

clean:
	rm -rf $(VENV) $(STAMPS) node_modules .pytest_cache .ruff_cache
	rm -rf $(LAB)/node_modules $(LAB)/lib $(LAB)/lavahub_jupyter/labextension $(LAB)/tsconfig.tsbuildinfo
