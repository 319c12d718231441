# The README's commands. Every target sets up first (scripts/setup is idempotent and fast
# when nothing changed), so a fresh clone needs nothing but `make run` or `make test`.
#
#   make run                         the whole service on local stand-ins (scripts/run)
#   make test                        the test suite (needs redis-server: setup installs it)
#   make test PYTEST_ARGS='-k sync -x'
#   make lint | format | bench | test-browser | clean
#   make openapi                     rewrite docs/openapi.json from the code (webhooks/openapi.py)

SHELL := /bin/bash
BIN := .venv/bin

# Browser tests have their own target (they need chromium); a -m in PYTEST_ARGS wins.
PYTEST_MARKERS ?= not browser
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup run test lint format bench test-browser clean openapi

setup:
	@scripts/setup

run: setup
	@scripts/run

test: setup
	@command -v redis-server >/dev/null || { \
	  echo "make test: redis-server is not on PATH; run scripts/setup" >&2; exit 1; }
	$(BIN)/pytest -q -p no:cacheprovider -m "$(PYTEST_MARKERS)" $(PYTEST_ARGS)

# All three checks run, so one pass shows every problem; any failure fails the target.
lint: setup
	@status=0; \
	echo "+ ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "+ ruff format --check ."; $(BIN)/ruff format --check . || status=1; \
	echo "+ mypy"; $(BIN)/mypy || status=1; \
	exit $$status

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

test-browser:
	@scripts/setup --browser
	$(BIN)/pytest -q -p no:cacheprovider -m browser $(PYTEST_ARGS)

openapi: setup
	$(BIN)/python -c 'from webhooks.openapi import openapi_json; print(openapi_json(), end="")' > docs/openapi.json

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
