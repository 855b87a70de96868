# The two README commands: `make run` and `make test`. Every install step lives here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all lint bench clean install autobahn soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/hub run --config hub.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Everything, the slow tests included: `make soak` and `make autobahn` run as pytest tests marked slow.
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# Autobahn|Testsuite fuzzingclient (Python 2.7 from pyenv) against the hub's websocket layer; fails on any FAILED case.
autobahn: $(STAMP)
	$(BIN)/python -m tests.autobahn.run

# 20,000 websocket cycles and a never-reading client under 50,000 publications, against `hub run`.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/soak

lint: $(STAMP)
	$(BIN)/ruff check hub protocols tests bench

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
