# CareLedger: `make demo` runs the story, `make test` runs the whole suite. Each builds .venv first,
# with only what it needs: the runtime lock for the demo, the runtime and dev locks for the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: demo test lint bench cometbft loadgen browser screenshots wheel lock clean soak venv faults

$(RUNTIME): requirements/runtime.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --require-hashes -r requirements/runtime.lock
	$(PIP) --no-deps --no-build-isolation -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME) requirements/dev.lock
	$(PIP) --require-hashes -r requirements/dev.lock
	touch $(DEV)

venv: $(DEV)

demo: $(RUNTIME)
	$(VENV)/bin/careledger demo

test: $(DEV) cometbft loadgen browser
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

lint: $(DEV)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

bench: $(RUNTIME)
	$(VENV)/bin/careledger bench --engine solo

cometbft:
	@if [ -x scripts/install-cometbft.sh ]; then scripts/install-cometbft.sh; fi

loadgen:
	scripts/build-loadgen.sh

# Debian's Chromium for the web console's browser tests (and CJK fonts for its Chinese screenshots);
# installed when missing and this runs as root, as on CI machines; otherwise say how.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else echo "chromium is missing: run 'apt-get install -y chromium' as root (the browser tests fail under CI=true)"; fi; \
	fi

# Refresh the README's screenshots of the web console (the browser tests take them).
screenshots: $(DEV) browser
	CARELEDGER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q -p no:cacheprovider tests/console

wheel: $(DEV)
	rm -rf dist && $(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist

lock:
	scripts/lock.sh

# The CometBFT fault matrix, about 10 minutes: a fresh 4-validator network under load through rolling
# kills, a paused validator, a CometBFT killed under its live API, 2 of 4 down, and (as root, with
# `ip netns`) a partitioned validator; prints its figures and exits 4 if an invariant fails.
# `make test` runs the 1.5-minute plan (tests/engines/test_faults.py).
faults: $(DEV) cometbft
	rm -rf build/faults
	$(VENV)/bin/careledger net faults --home build/faults --plan long

soak: $(DEV)
	CARELEDGER_SOAK=1 $(PY) -m pytest -q -p no:cacheprovider -m slow

clean:
	rm -rf $(VENV) .tools build dist src/*.egg-info
