# The README's commands: `make demo`, `make test`; and friends.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

VENV   := .venv
BIN    := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0
# PostgreSQL's server binaries (.ci/run installs them): where they are, the `pg` tests run too, on
# a throw-away cluster the tests start on 127.0.0.1; MLPLAT_TEST_PG=require makes a cluster that
# cannot start a failure, not a skip.
PG_CTL := $(firstword $(shell command -v pg_ctl 2>/dev/null) $(wildcard /usr/lib/postgresql/*/bin/pg_ctl))
PG_ENV := MLPLAT_TEST_PG=$(if $(PG_CTL),require,)
PYTEST_MARKERS := not browser and not hub and not slow and not gpu$(if $(PG_CTL),, and not pg)

# jlpm (yarn 3) ignores npm's registry setting: hand it npm's (never written into the repo).
ifndef YARN_NPM_REGISTRY_SERVER
YARN_NPM_REGISTRY_SERVER := $(shell npm config get registry 2>/dev/null | sed 's:/*$$::')
endif
export YARN_NPM_REGISTRY_SERVER
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The labextension build runs `jlpm` and `jupyter` from the venv.
export PATH := $(abspath $(BIN)):$(PATH)

ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: venv demo test lint pytest pytest-pg check-extensions browser test-hub lab bench clean bench-registry bench-serving

venv: $(STAMP)

# torch goes in first and pinned: the torch extra alone may pull a multi-GB CUDA build.
$(STAMP): pyproject.toml labextension/package.json
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[test,torch,hub]"
	touch $@

demo: venv
	$(BIN)/jupyter mlplat demo

test: venv lint jest pytest check-extensions browser test-hub

lint: venv
	$(BIN)/ruff check jupyter_mlplat tests

# The TypeScript side: its lint (stylelint, prettier, eslint as the extension template sets them)
# and its units (labextension/src/__tests__) with jest. node_modules come with the editable
# install's labextension build (`jlpm install` where they are missing, e.g. after `make clean`);
# one test runs the Python parser of this venv on what the "Promote" dialog writes.
.PHONY: jest
jest: venv
	cd labextension && { test -d node_modules || jlpm install; } && jlpm lint:check && \
	  MLPLAT_PYTHON=$(abspath $(PYTHON)) jlpm test

# pytest exits 5 when it collected nothing: make fails on any non-zero status, that one included.
pytest: venv
	$(PG_ENV) $(PYTHON) -m pytest -m "$(PYTEST_MARKERS)" -p no:cacheprovider

# Only the tests against PostgreSQL (fails where its binaries are missing).
pytest-pg: venv
	MLPLAT_TEST_PG=require $(PYTHON) -m pytest -m "pg and not slow" -p no:cacheprovider

# Capture first, then grep: a pipe into `grep -q` under pipefail can fail a passing check.
# The lists colour their words (ANSI codes even when not on a terminal): match with `.*`.
check-extensions: venv
	out="$$($(BIN)/jupyter server extension list 2>&1)"; \
	  echo "$$out"; \
	  grep -Eq 'jupyter_mlplat .*enabled' <<<"$$out"; \
	  grep -Eq 'jupyter_mlplat [0-9][^ ]* .*OK' <<<"$$out"
	out="$$($(BIN)/jupyter labextension list 2>&1)"; \
	  echo "$$out"; \
	  grep -Eq 'jupyter-mlplat .*enabled.*OK' <<<"$$out"

# Its own pytest run: pytest-jupyter's event loop and Playwright's sync API clash in one session.
# Debian Chromium (/usr/bin/chromium, `apt-get install chromium`); exit 5 (nothing collected) fails too.
browser: venv
	$(PYTHON) -m pytest tests/browser -m browser -p no:pytest_jupyter.jupyter_server -p no:cacheprovider

# Multi-user isolation through a real JupyterHub on loopback (tests/hub, marker `hub`): the hub
# extra, and configurable-http-proxy from npm in .venv/chp (never a global install).
CHP := $(VENV)/chp/node_modules/.bin/configurable-http-proxy

$(CHP):
	npm install --silent --prefix $(VENV)/chp configurable-http-proxy@5

test-hub: venv $(CHP)
	MLPLAT_HUB_CHP=$(abspath $(CHP)) $(PYTHON) -m pytest tests/hub tests/scheduler/test_hub_scheduler.py -m hub -p no:cacheprovider

lab: venv
	$(BIN)/jupyter lab $(ALLOW_ROOT)

bench: venv
	$(PYTHON) benchmarks/pipeline_diamond.py

clean:
	rm -rf build dist .ruff_cache .pytest_cache jupyter_mlplat/labextension jupyter_mlplat/_version.py \
	  labextension/lib labextension/node_modules labextension/tsconfig.tsbuildinfo
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# jupyter-mlplat's model registry against MLflow's (~3 min); MLflow gets its own venv,
# benchmarks/.venv-mlflow, which the script creates on first use.
bench-registry: venv
	$(PYTHON) benchmarks/registry_log_load.py

# jupyter-mlplat's serve process against `mlflow models serve`, MLServer and a minimal tornado
# handler (~5 min; server on core 0, wrk or an asyncio client on core 1). MLServer gets its own
# venv, benchmarks/.venv-mlserver, made on first use; MLflow's is the registry benchmark's.
bench-serving: venv
	$(PYTHON) benchmarks/serving.py

# Several users tracking runs at once (U in {1, 4}, ~3-5 min): the store service under a real
# JupyterHub, `mlflow server` and the SQL store directly, all on one throw-away PostgreSQL cluster
# (needs PostgreSQL's server binaries; configurable-http-proxy as test-hub installs it). MLflow's
# venv is the registry benchmark's.
.PHONY: bench-tracking
bench-tracking: venv
	$(PYTHON) benchmarks/tracking_multiuser.py
