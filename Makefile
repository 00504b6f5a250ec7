# The hub's tasks. `make help` lists them. Every target creates .venv and
# installs the project into it first, so a bare machine with Python 3.11+ needs
# nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test demo bench lint format schemas

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP) ## run the hub (embedded PostgreSQL + NATS unless MDM_DATABASE_URL / MDM_NATS_URL are set)
	$(BIN)/mdm serve

test: $(STAMP) ## run the test suite (uses MDM_TEST_DATABASE_URL / MDM_TEST_NATS_URL if set, else embedded servers)
	scripts/ensure-chromium
	$(BIN)/python -m pytest

demo: $(STAMP) ## load a sample from CRM, PSA, ERP and HCM and print the golden records
	$(BIN)/mdm demo

bench: $(STAMP) ## batch-ingestion benchmark against a real PostgreSQL (see docs/benchmarks.md)
	$(BIN)/python bench/ingest_batch.py

lint: $(STAMP) ## ruff lint and format check, mypy type check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP) ## regenerate schemas/json from the msgspec Structs
	$(BIN)/mdm schemas
