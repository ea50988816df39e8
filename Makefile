# The operator surface of DESIGN §7. `make demo` and `make test` work from a fresh clone:
# they install the virtualenv and the local stack (MariaDB, Redis, Kafka, DynamoDB Local).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STACK   := $(PY) scripts/stack.py
# Endpoints of the local stack, for commands that talk to it.
WITH_ENV = set -a && . .stack/env && set +a &&

.PHONY: setup tools stack-up stack-down stack-status test test-unit test-integration demo bench bench-rss chaos lint clean

setup: $(BIN)/.installed

# setup.py builds the reader's compiled row codec (gcc + Python headers; optional: without them the
# reader falls back to its pure-Python path with a warning).
$(BIN)/.installed: pyproject.toml constraints.txt setup.py replicator/reader/_rowcodec.c
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# helm, built from the Go module proxy (scripts/tools.py), for the chart's lint and render tests;
# toxiproxy, the TCP proxy of the fault campaign (make chaos and its short run in the suite).
tools: .stack/tools/helm .stack/tools/toxiproxy-server

.stack/tools/helm: scripts/tools.py
	$(PY) scripts/tools.py helm

.stack/tools/toxiproxy-server: scripts/tools.py
	$(PY) scripts/tools.py toxiproxy

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

test: setup tools stack-up
	$(WITH_ENV) $(BIN)/pytest

test-unit: setup
	$(BIN)/pytest -m "not integration"

test-integration: setup stack-up
	$(WITH_ENV) $(BIN)/pytest -m integration

demo: setup stack-up
	$(WITH_ENV) $(BIN)/replicator demo

bench: setup stack-up
	$(STACK) fetch connect
	$(WITH_ENV) $(BIN)/python -m bench

# Peak RSS of the reader, writer and reverse replication under growing backlogs (issue 15);
# BENCH_RSS_SIZES, BENCH_RSS_REVERSE_SIZES, BENCH_RSS_OUTAGE_S size it (bench/resource_bounds.py).
bench-rss: setup stack-up
	$(WITH_ENV) $(BIN)/python -m bench resource_bounds

# The randomized fault campaign (docs/chaos.md): CHAOS_RUNS runs (default 200), CHAOS_SEED=<seed>
# CHAOS_RUNS=1 replays a failing seed; CHAOS_BUDGET_S bounds the wall time (no run starts after it).
chaos: setup stack-up .stack/tools/toxiproxy-server
	$(WITH_ENV) $(BIN)/python -m tests.chaos

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean: stack-down
	rm -rf .stack $(VENV)
