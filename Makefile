# Two commands on a fresh machine with Python 3.11 and make: `make demo`, `make test`.
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .elt/uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-spark bench-spark bench bench-marketing bench-doctor bench-engines clean setup

setup: $(VENV)/.synced

# uv itself comes from PyPI into a private venv, so nothing but Python is assumed
$(UV):
	$(PYTHON) -m venv .elt/uv
	.elt/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# bytecode is compiled at install: these machines set PYTHONDONTWRITEBYTECODE, and every
# `elt` start would otherwise recompile ~1000 modules (bench/README.md)
$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

demo: setup
	$(BIN)/elt demo
	$(BIN)/elt load
	$(BIN)/elt transform
	$(BIN)/elt test
	@echo ""
	@echo "Left running: the embedded warehouse (.elt/pgdata) and the demo payments API; \`$(BIN)/elt stop\` (or make clean) stops both."
	@echo "Try next:"
	@echo "  $(BIN)/elt doctor                 what is up, stale or failing"
	@echo "  $(BIN)/elt sql \"select * from marts.rpt_daily_revenue limit 5\""
	@echo "  $(BIN)/elt demo --tick && $(BIN)/elt load && $(BIN)/elt transform"

# the suite includes lint (tests/test_lint.py: ruff, sqlfluff with the dbt templater);
# two pytest-xdist workers, each with its own ELT_HOME and embedded server, one test module
# per worker at a time (modules build on their own warehouse in file order)
TEST_WORKERS ?= 2
test: setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# the Spark flow on a local standalone cluster (README "Running on Spark"): the optional
# extra is installed here only; the marker keeps these tests out of `make test`
test-spark: setup
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON) --extra spark
	# all of tests/spark: the cluster flow and the URL tests that need the extra installed
	$(BIN)/pytest tests/spark -m 'spark or not spark'

bench-spark: setup
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON) --extra spark
	$(BIN)/python -m bench.spark --orders 20000

# every goal of issue 16 in one table (bench/all.py, bench/README.md); on a quiet machine.
# `make bench BENCH_ARGS=--check` exits 1 on a missed goal; BENCH_ARGS="--only shop_load"
bench: setup
	$(BIN)/python -m bench.all $(BENCH_ARGS)

bench-marketing: setup
	$(BIN)/python -m bench.marketing_csv --rows 1000000,10000000 --bad-every 1000

bench-doctor: setup
	$(BIN)/python -m bench.doctor --runs 5

bench-engines: setup
	$(BIN)/python -m bench.engines --orders 1000000

clean:
	-[ -x $(BIN)/elt ] && $(BIN)/elt stop
	rm -rf $(VENV) .elt/uv .elt/pipelines dbt/target dbt/logs
