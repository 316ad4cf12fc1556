# The two commands of README.md. Each sets everything up first (scripts/setup_env.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup bench test clean
setup:
	ZEROFWHT_VENV=$(VENV) bash scripts/setup_env.sh

bench: setup
	$(PY) -m zerofwht.bench $(BENCH_ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf build *.egg-info zerofwht/_C*.so bench_out .pytest_cache
