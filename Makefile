# The hub's tasks. `make help` lists them. Every target creates .venv and
# installs the project into it first, so a bare machine with Python 3.11+ needs
# nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test test-embedded demo bench lint format schemas

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

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

# The tests whose outcome can depend on which servers they run against: the lookup
# pool and its LISTEN connection, connections killed or servers restarted under load,
# `mdm serve` processes handed the test URLs, and the embedded servers themselves
# (next to the suite's own). The embedded PostgreSQL is reached over a Unix socket,
# its URL has the socket directory in a query string; a server of MDM_TEST_* is TCP.
EMBEDDED_TESTS := \
	tests/integration/test_lookup_cache.py \
	tests/integration/test_lookup_warm.py \
	tests/integration/test_embedded.py \
	tests/integration/test_serve_embedded.py \
	tests/integration/test_faults.py \
	tests/integration/test_relay_faults.py \
	tests/integration/test_multi_process.py \
	tests/integration/test_matching_api.py::test_a_failed_matching_read_is_an_error_the_api_maps_like_its_other_statements

test-embedded: $(STAMP) ## run EMBEDDED_TESTS (lookup pool, faults, embedded servers) on embedded PostgreSQL + NATS, even with MDM_TEST_* set
	env -u MDM_TEST_DATABASE_URL -u MDM_TEST_NATS_URL $(BIN)/python -m pytest $(EMBEDDED_TESTS)

demo: $(STAMP) ## load a sample from CRM, PSA, ERP and HCM and print the golden records
	$(BIN)/mdm demo

bench: $(STAMP) ## batch-ingestion benchmark against a real PostgreSQL (see docs/benchmarks.md)
	$(BIN)/python bench/ingest_batch.py

lint: $(STAMP) ## ruff lint and format check, mypy type check, the layers' import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP) ## regenerate schemas/json from the msgspec Structs
	$(BIN)/mdm schemas
