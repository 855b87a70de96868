# The two README commands: `make run` and `make test`. Every install step lives here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all lint bench profile clean install system-deps screenshots chat-suite autobahn soak proto sdk-suites

# Debian packages the tests and benchmarks run, installed when missing (CI runs as root on Debian):
# mosquitto-clients (mosquitto_pub/mosquitto_sub in the MQTT tests), chromium (the dashboard's browser tests, driven
# by playwright at /usr/bin/chromium: playwright never downloads a browser), redis-server (the Redis engine tests
# start their own on a free port); for `make bench`, mosquitto (the peer broker) and redis-server.
TEST_APT := mosquitto_sub:mosquitto-clients chromium:chromium redis-server:redis-server
BENCH_APT := mosquitto:mosquitto redis-server:redis-server
define apt_install
	@missing=""; for pair in $(1); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else echo "make: missing Debian packages:$$missing (tests that need them are skipped)"; fi; \
	fi
endef

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml setup.py hub/net/_writemany.c hub/core/_outbox.c $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps rocketchat-async==4.3.0
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/hub run --config hub.toml

system-deps:
	$(call apt_install,$(TEST_APT))

# Three test processes (pytest-xdist): most tests wait on subprocesses and sockets, so three fit two cores.
PYTEST_WORKERS ?= 3
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS)

# Everything, the slow tests included: `make soak` and `make autobahn` run as pytest tests marked slow.
test-all: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -m ''

# Autobahn|Testsuite fuzzingclient (Python 2.7 from pyenv) against the hub's websocket layer; fails on any FAILED case.
autobahn: $(STAMP)
	$(BIN)/python -m tests.autobahn.run

# 20,000 websocket cycles and a never-reading client under 50,000 publications, against `hub run`.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/soak

# Screenshots of every dashboard page for the README (docs/dashboard/*.png), taken by the browser test.
screenshots: $(STAMP) system-deps
	HUB_SCREENSHOTS=$(CURDIR)/docs/dashboard $(BIN)/python -m pytest -q tests/protocols/dashboard/test_browser.py -k screenshots

# rocketchat_API's own test suite (its sdist, downloaded once into .cache/) against a fresh hub; per-file counts.
chat-suite: $(STAMP)
	$(BIN)/python -m tests.protocols.chat.rc_suite

# The Centrifugo SDKs' own suites against a fresh hub: centrifuge-python's (its sdist, downloaded once into .cache/),
# and with JS=<path> centrifuge-js's (a checkout with `npm install --legacy-peer-deps --ignore-scripts` done) on its
# centrifugo_test.json; JS_FILES=a.test.ts,b.test.ts picks files (default: all); per-file passed/failed. REDIS=1: the
# hub on the Redis engine (a throwaway redis-server).
JS ?=
JS_FILES ?=
SDK_TIMEOUT ?= 60
REDIS ?=
sdk-suites: $(STAMP)
	$(BIN)/python -m tests.protocols.realtime.suites --timeout $(SDK_TIMEOUT) $(if $(JS),--js $(JS)) $(if $(JS_FILES),--js-files $(JS_FILES)) $(if $(REDIS),--redis)

lint: $(STAMP)
	$(BIN)/ruff check hub protocols tests bench

bench: $(STAMP)
	$(call apt_install,$(BENCH_APT))
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench

# py-spy flame graphs of the hub's hot phase (bench/README.md, "Profiles"): many channels through the signed API,
# and fan-out at 1,000 publications/s to 1,000 subscribers. Writes bench/results/profile-*.svg.
profile: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	BENCH_PROFILE=$(CURDIR)/bench/results/profile-channels.svg $(BIN)/python -m bench.channels -n 10000 -m 100000 --target hub
	BENCH_PROFILE=$(CURDIR)/bench/results/profile-rate.svg $(BIN)/python -m bench.fanout -k 1000 --rate 1000 --duration 5 \
		--drain-limit 10 --sample 10 --coalesce-ms 5
	@ls -l bench/results/profile-*.svg

clean:
	rm -rf $(VENV) build *.egg-info

# Regenerate the Protobuf code of the Centrifugo client protocol (checked in; needs the dev tools).
proto: $(STAMP)
	$(BIN)/python -m pip install --quiet 'grpcio-tools>=1.60'
	cd protocols/realtime/proto && ../../../$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. centrifugo_client.proto
