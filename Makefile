# The two commands: `make run` and `make test`. Both set up what they need first.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --quiet \
              --custom-compile-command "make lock"
# `make test` runs pytest in this many worker processes (pytest-xdist): most of the slow tests
# wait on outages, restarts and timeouts rather than compute (docs/performance.md, "Test suite
# time"). The tests marked xdist_group("cpu") run one after another on one worker.
TEST_WORKERS ?= 2
# Services and tools that `make unit` does without.
UNIT := not rabbitmq and not postgresql and not browser

.PHONY: run test stop setup services lint typecheck unit lock bench clean help

help:
	@echo "make run    set up, start RabbitMQ and the gateway, send the sample Form D SG -> TH"
	@echo "make test   set up, start services, then ruff, mypy --strict and pytest"
	@echo "make stop   stop the gateway started by make run"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make unit   the tests that need no RabbitMQ, PostgreSQL or browser"
	@echo "make lock   update requirements/*.lock after a change to pyproject.toml"
	@echo "            (UPGRADE=1: move every pin to the newest release)"

# Installs exactly what requirements/dev.lock pins (hashes checked), then the gateway itself,
# then the testers' tools (toolkit/, distribution asw-toolkit; the image installs only the gateway).
$(STAMP): pyproject.toml toolkit/pyproject.toml requirements/dev.lock scripts/setup-python
	@scripts/setup-python
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	@scripts/ensure-services rabbitmq
	@scripts/run-demo

stop:
	@scripts/stop-gateway

test: setup
	@scripts/ensure-services rabbitmq postgresql tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check gateway adapters toolkit

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "$(UNIT)"

# Runtime pins first (the image installs them); the dev lock keeps the same runtime pins.
# Existing pins are kept unless pyproject.toml needs others or UPGRADE=1. Needs only uv in .venv
# (not a set-up from the lock, which may be the thing being repaired).
lock:
	@[ -x $(BIN)/uv ] || scripts/setup-python
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) \
	  -o requirements/runtime.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) \
	  -c requirements/runtime.lock -o requirements/dev.lock

bench: setup
	@scripts/ensure-services rabbitmq postgresql tools
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
