# The two README commands: `make run` and `make test`. Every install step lives here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all lint bench clean install chat-suite

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps rocketchat-async==4.3.0
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/hub run --config hub.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# rocketchat_API's own test suite (its sdist, downloaded once into .cache/) against a fresh hub; per-file counts.
chat-suite: $(STAMP)
	$(BIN)/python -m tests.protocols.chat.rc_suite

lint: $(STAMP)
	$(BIN)/ruff check hub protocols tests bench

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
