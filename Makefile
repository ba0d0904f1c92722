# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all check bench clean console

# The C extension (tickerplant/_rowpack*.c, .h) is built by the install: rebuilt when it changes.
$(STAMP): pyproject.toml setup.py tickerplant/_rowpack.c tickerplant/_rowpack_read.c tickerplant/_rowpack.h
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tickdb up --demo

# The independent FIX engine the FIX tests drive the acceptor with (jspurefix, from npm).
JS_DIR := tests/fix_js
JS_STAMP := $(JS_DIR)/node_modules/.installed

$(JS_STAMP): $(JS_DIR)/package.json
	if command -v npm >/dev/null; then \
		npm install --prefix $(JS_DIR) --no-audit --no-fund --silent && touch $(JS_STAMP); fi

# The C extension must be there: its tests would otherwise only test the fallback.
# Two workers, a test file each at a time (its module fixtures start real processes once):
# most of a test's time is spent waiting on processes, so two files share two cores well.
PYTEST_WORKERS ?= -n 2 --dist loadfile
test: $(STAMP) $(JS_STAMP)
	TICKDB_REQUIRE_COMPILED=1 $(BIN)/pytest -q $(PYTEST_WORKERS) --durations=15

test-all: $(STAMP) $(JS_STAMP)
	TICKDB_REQUIRE_COMPILED=1 $(BIN)/pytest -q $(PYTEST_WORKERS) -m ''

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The web console's page (docs/console.md): built from console/ into gateway/console/static,
# which is committed, so neither `make run` nor `make test` needs npm.
console:
	cd console && npm ci --no-audit --no-fund && npm run build

# Every benchmark script; the bench_* modules they share (no __main__) are skipped.
bench: $(STAMP)
	for s in scripts/bench_*.py; do \
		grep -q __main__ $$s || continue; $(BIN)/python $$s || exit 1; done

clean:
	rm -rf $(VENV) tickdb-data .pytest_cache .mypy_cache .ruff_cache
