# Two entry points a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo serve test lint clean bench

$(BIN)/onboarding: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/onboarding

# demo-output/ is the demo's own: a rerun replaces it and prints what it replaced. Anything there
# the demo did not make stops it; `make demo DEMO_FLAGS=--force` moves that to
# demo-output/replaced-<time>/ first.
DEMO_FLAGS ?=
demo: install
	$(BIN)/onboarding demo --dir demo-output $(DEMO_FLAGS)

# The web page on the demo data (the demo runs first if it has not). The clock stays where the
# demo's quarter ends, as the demo suggests; `make serve DEMO_NOW=` uses the real clock.
DEMO_NOW ?= 2021-06-30T17:00
serve: install
	@test -f demo-output/onboarding.db || $(BIN)/onboarding demo --dir demo-output
	ONBOARDING_NOW=$(DEMO_NOW) $(BIN)/onboarding serve --db demo-output/onboarding.db

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# The benchmarks of issue 6 (bench/): one table, and bench/RESULTS.md. The first run also
# generates its databases into bench/.cache/ (about 3 minutes, a few GB of disk).
$(VENV)/.bench-installed: pyproject.toml $(BIN)/onboarding
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
