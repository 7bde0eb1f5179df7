# The two commands a user needs: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aire-installed
# pip's configuration on these machines warns about every missing local index; the warnings are noise.
QUIET := sed -u '/is ignored: it is neither a file nor a directory/d'

.PHONY: install demo test test-unit serve stop ui bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> installing aire into $(VENV) (first time: a few minutes)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | $(QUIET)
	$(BIN)/pip install -q -e ".[dev]" 2>&1 | $(QUIET)
	touch $@

# Installs, builds the local models, starts vLLM, benchmarks champion and challenger-worse, stops everything.
demo: install
	$(BIN)/python infra/demo.py

# Unit tests (fake OpenAI server) and integration tests (real vLLM, MLflow, Prefect, Prometheus).
# Prometheus and promtool, Chromium (a headless screenshot of MLflow's UI), and PostgreSQL (the store's tests run on SQLite and on a throwaway PostgreSQL
# cluster), come from Debian's packages: installed here when missing and root (CI starts from a fresh
# Debian machine); otherwise their tests skip and say why.
test: install
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "==> installing Debian's prometheus (server + promtool)"; \
	    apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; \
	  else echo "prometheus/promtool missing and not root: their tests will skip (apt-get install -y prometheus)"; fi; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "==> installing Debian's postgresql (the store tests start a throwaway cluster on 127.0.0.1)"; \
	    apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
	  else echo "postgresql missing and not root: the store's PostgreSQL cases will skip (apt-get install -y postgresql)"; fi; \
	fi
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    echo "==> installing Debian's chromium (headless screenshots of MLflow's evaluation view)"; \
	    apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
	  else echo "chromium missing and not root: the MLflow browser test will skip (apt-get install -y chromium)"; fi; \
	fi
	$(BIN)/ruff check .
	$(BIN)/aire models build
	$(BIN)/python -m pytest -q -rs --durations=10 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; exit $$rc

test-unit: install
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

serve: install
	$(BIN)/aire models build
	$(BIN)/aire serve

stop:
	-$(BIN)/aire serve --stop
	-$(BIN)/aire ui --stop

ui: install
	$(BIN)/aire ui

bench: install
	$(BIN)/aire models build
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.sequential
	$(BIN)/python -m benchmarks.gateway
	$(BIN)/python -m benchmarks.cache_threshold
	$(BIN)/python -m benchmarks.replicas
	$(BIN)/python -m benchmarks.scale

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: stop
	rm -rf .aire
