# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need first (Debian packages when missing, then a venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit install clean

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
	$(BIN)/ruff check exporter tests benchmarks grafana deploy
	$(BIN)/ruff format --check exporter tests benchmarks grafana deploy
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit

clean:
	rm -rf $(VENV) build *.egg-info
