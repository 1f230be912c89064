# The two commands: `make run` and `make test`. Both set up what they need first.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test stop setup services lint typecheck unit bench clean help

help:
	@echo "make run    set up, start RabbitMQ and the gateway, send the sample Form D SG -> TH"
	@echo "make test   set up, start services, then ruff, mypy --strict and pytest"
	@echo "make stop   stop the gateway started by make run"
	@echo "make bench  run the benchmarks in bench/"

$(STAMP): pyproject.toml
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
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check gateway adapters

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "not rabbitmq"

bench: setup
	@scripts/ensure-services rabbitmq postgresql tools
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
