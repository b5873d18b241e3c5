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
PYTEST_MARKERS := not browser and not hub and not pg and not slow and not gpu

# jlpm (yarn 3) ignores npm's registry setting: hand it npm's (never written into the repo).
ifndef YARN_NPM_REGISTRY_SERVER
YARN_NPM_REGISTRY_SERVER := $(shell npm config get registry 2>/dev/null | sed 's:/*$$::')
endif
export YARN_NPM_REGISTRY_SERVER
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The labextension build runs `jlpm` and `jupyter` from the venv.
export PATH := $(abspath $(BIN)):$(PATH)

ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: venv demo test lint pytest check-extensions browser lab bench clean bench-registry bench-serving

venv: $(STAMP)

# torch goes in first and pinned: the torch extra alone may pull a multi-GB CUDA build.
$(STAMP): pyproject.toml labextension/package.json
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[test,torch]"
	touch $@

demo: venv
	$(BIN)/jupyter mlplat demo

test: venv lint pytest check-extensions browser

lint: venv
	$(BIN)/ruff check jupyter_mlplat tests

# pytest exits 5 when it collected nothing: make fails on any non-zero status, that one included.
pytest: venv
	$(PYTHON) -m pytest -m "$(PYTEST_MARKERS)" -p no:cacheprovider

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
