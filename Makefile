# Two commands on a fresh machine with Python 3.11 and make: `make demo`, `make test`.
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .elt/uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench bench-marketing bench-doctor bench-engines clean setup

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

# the suite includes lint (tests/test_lint.py: ruff, sqlfluff with the dbt templater)
test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m bench.shop_load

bench-marketing: setup
	$(BIN)/python -m bench.marketing_csv --rows 1000000 --bad-every 1000 --repeat 3

bench-doctor: setup
	$(BIN)/python -m bench.doctor --runs 5

bench-engines: setup
	$(BIN)/python -m bench.engines --orders 1000000

clean:
	rm -rf $(VENV) .elt/uv .elt/pipelines dbt/target dbt/logs
