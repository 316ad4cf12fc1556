#!/usr/bin/env bash
# Sets up everything zerofwht needs, idempotently: a virtual environment (.venv, or $ZEROFWHT_VENV),
# torch, the build of the extension and the test/benchmark dependencies.
#
# torch: a torch already importable by python3 (a CUDA build included) is reused, by creating
# the venv with --system-site-packages; otherwise the CPU build torch==2.13.0 is installed
# (override with ZEROFWHT_TORCH_SPEC, e.g. "torch==2.14.1" for a CUDA 13.0 build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ZEROFWHT_VENV:-.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "setup: reusing torch $("$PY" -c 'import torch; print(torch.__version__)') from $PY"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing ${ZEROFWHT_TORCH_SPEC:-torch==2.13.0}"
  "${pip[@]}" install -q "${ZEROFWHT_TORCH_SPEC:-torch==2.13.0}"
fi
"${pip[@]}" install -q numpy scipy ninja pybind11 setuptools wheel pytest pytest-benchmark matplotlib
# scikit-learn: only for the examples' data set (sklearn.datasets.load_digits ships its data).
"$VENV/bin/python" -c "import sklearn" >/dev/null 2>&1 || "${pip[@]}" install -q scikit-learn || \
  echo "setup: scikit-learn not installed (optional: examples/)"
# transformers: optional (init_model_ tests on Hugging Face architectures built from configs, no weights).
"$VENV/bin/python" -c "import transformers" >/dev/null 2>&1 || "${pip[@]}" install -q transformers || \
  echo "setup: transformers not installed (optional: init_model_ tests on Hugging Face models skip)"
# triton: optional (GPU backend, and its CPU interpreter for tests); never let it replace torch.
"$VENV/bin/python" -c "import triton" >/dev/null 2>&1 || "${pip[@]}" install -q triton || \
  echo "setup: triton not installed (optional)"

# The public CPU transforms that `make bench` measures beside ours (its table is the README's):
# optional; a peer that does not install is skipped by the benchmark with the reason.
peer_ok() { "$VENV/bin/python" -c "import $1" >/dev/null 2>&1; }
peer_ok fht_cpu || "${pip[@]}" install -q fht-cpu || echo "setup: peer fht-cpu not installed (make bench skips it)"
peer_ok hadamard_transform || "${pip[@]}" install -q hadamard-transform || \
  echo "setup: peer hadamard-transform not installed (make bench skips it)"
# ffht-unofficial compiles FFHT at install time against numpy and pybind11 (installed above).
peer_ok ffht || "${pip[@]}" install -q --no-build-isolation ffht-unofficial || \
  echo "setup: peer ffht-unofficial not installed (needs a C compiler; make bench skips it)"

# Rebuild the extension when a source changed since the last build.
stamp="$VENV/.zerofwht-build-stamp"
if [ ! -f "$stamp" ] || [ -n "$(find csrc setup.py pyproject.toml -newer "$stamp" -print -quit)" ] \
   || ! "$VENV/bin/python" -c "import zerofwht._C" >/dev/null 2>&1; then
  echo "setup: building zerofwht._C (pip install --no-build-isolation -e .)"
  MAX_JOBS=${MAX_JOBS:-2} "${pip[@]}" install -q --no-build-isolation --no-deps -e . 
  touch "$stamp"
fi
"$VENV/bin/python" -c "import zerofwht, torch; print('setup: zerofwht', zerofwht.__version__, '| torch', torch.__version__, '| cpu isa', zerofwht.cpu_isa(), '| backends available:', [b['name'] for b in zerofwht.backends() if b['available']])"
