# The two commands of README.md. Each sets everything up first (scripts/setup_env.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup bench test clean gpu-check
setup:
	ZEROFWHT_VENV=$(VENV) bash scripts/setup_env.sh

bench: setup
	$(PY) -m zerofwht.bench $(BENCH_ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf build *.egg-info zerofwht/_C*.so bench_out .pytest_cache

# Everything that needs a GPU, time-boxed, one summary in $(OUT) (docs/gpu_check.md). Uses the
# python3 it finds (ZEROFWHT_PY=... to choose), not the venv: the GPU machine brings its own torch.
# GPU_CHECK_ARGS: --quick (< 4 min), --dry-run (no GPU needed).
OUT ?= gpu_check_out
GPU_CHECK_ARGS ?=
gpu-check:
	bash scripts/gpu_check.sh $(OUT) $(GPU_CHECK_ARGS)
