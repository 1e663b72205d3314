# CareLedger: `make demo` runs the story, `make test` runs the whole suite. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench cometbft clean soak

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/careledger demo

test: $(STAMP) cometbft
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/careledger bench --engine solo

cometbft:
	@if [ -x scripts/install-cometbft.sh ]; then scripts/install-cometbft.sh; fi

soak: $(STAMP)
	CARELEDGER_SOAK=1 $(PY) -m pytest -q -p no:cacheprovider -m slow

clean:
	rm -rf $(VENV) .tools build dist src/*.egg-info
