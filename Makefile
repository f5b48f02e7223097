# Two commands for a fresh machine: `make run` (install into .venv and start the product on its
# embedded defaults) and `make test` (install what the tests need and run every check).

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
export UV_PYTHON := $(PYTHON)

NPM ?= npm

.PHONY: run test install check pytest postgres chromium demo clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet uv==$(UV_VERSION)

## Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
## `concerns` command and every `concerns serve` start would otherwise compile the libraries
## again (about 3 s to start the command instead of 1).
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

## The NHS.UK frontend's compiled CSS/JS (and axe-core for the browser tests), pinned in
## package-lock.json and served by `concerns serve` from ./node_modules.
node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

install: $(VENV)/.installed node_modules/.installed

## The PostgreSQL server binaries the storage tests start a throwaway server with.
postgres:
	@scripts/ensure-postgres

## The service on its embedded defaults: HTTP :8000, the SMTP mailbox :8025, SQLite under ./var.
run: install
	@mkdir -p var
	$(VENV)/bin/concerns db upgrade
	$(VENV)/bin/concerns serve

demo: install
	$(VENV)/bin/concerns demo

## Lint, format, types and layering first (seconds), then every test.
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## Debian's Chromium, for the browser tests.
chromium:
	@scripts/ensure-chromium

## Two workers (pytest-xdist): much of the suite waits on servers, browsers and subprocesses, so
## two share the two cores of these machines well (about 7 minutes instead of 11). Each worker
## starts its own PostgreSQL server and browser; every test already takes free ports and its own
## folders. `PYTEST_WORKERS=0 make pytest` runs it in one process.
PYTEST_WORKERS ?= 2

pytest: install postgres chromium
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS)

test: check pytest

clean:
	rm -rf $(VENV) .uv var node_modules test-output .pytest_cache .mypy_cache .ruff_cache
