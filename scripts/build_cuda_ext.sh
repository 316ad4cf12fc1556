#!/usr/bin/env bash
# Builds the WHOLE zerofwht extension against the CUDA build of torch and imports it, without a
# GPU (docs/design.md), then checks that the CUDA kernels registered:
#   1. creates / reuses a cached venv OUTSIDE the clone with torch==2.14.1 (CUDA 13.0 wheel,
#      about 5.5 GB; env ZEROFWHT_CUDA_VENV, default ~/.cache/zerofwht/cuda-venv);
#   2. builds zerofwht._C with ZEROFWHT_CUDA=1 (so missing CUDA is an error) into a build dir
#      outside the repo (env ZEROFWHT_CUDA_BUILD, default ~/.cache/zerofwht/cuda-build; its
#      object files are reused by the next run) for TORCH_CUDA_ARCH_LIST (default "8.0;9.0");
#   3. stages the Python package with that _C in the build dir, imports it with the CUDA torch and
#      checks: built_with_cuda(), a CUDA kernel for every op in CUDA_OPS, the CPU kernels still
#      correct (a CPU smoke test through the CUDA-built extension).
# Usage: scripts/build_cuda_ext.sh        (exit status non-zero on any failure)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${ZEROFWHT_CUDA_VENV:-$HOME/.cache/zerofwht/cuda-venv}
BUILD=${ZEROFWHT_CUDA_BUILD:-$HOME/.cache/zerofwht/cuda-build}
TORCH_SPEC=${ZEROFWHT_CUDA_TORCH_SPEC:-torch==2.14.1}
CUDA_OPS=${ZEROFWHT_CUDA_OPS:-zerofwht::fwht,zerofwht::fwht_out,zerofwht::fwht_inplace,zerofwht::init_fill_,zerofwht::fwht_kron}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
export MAX_JOBS=${MAX_JOBS:-2}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH="$CUDA_HOME/bin:$PATH"
PY="$VENV/bin/python"

t0=$(date +%s)
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" >/dev/null 2>&1; then
  echo "build_cuda_ext: creating $VENV with $TORCH_SPEC"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
"$PY" -m pip install -q ninja pybind11 setuptools wheel numpy >/dev/null
echo "build_cuda_ext: torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)') in $VENV ($(( $(date +%s) - t0 ))s)"

mkdir -p "$BUILD"
t1=$(date +%s)
ZEROFWHT_CUDA=1 "$PY" setup.py -q build_ext --build-lib "$BUILD/lib" --build-temp "$BUILD/temp" \
  >"$BUILD/build.log" 2>&1 || { tail -60 "$BUILD/build.log" >&2; echo "build_cuda_ext: BUILD FAILED (log: $BUILD/build.log)" >&2; exit 1; }
grep -m1 "zerofwht: building" "$BUILD/build.log" || true
echo "build_cuda_ext: built in $(( $(date +%s) - t1 ))s"

# Stage: the package's Python files + the CUDA-built _C (never the repo's in-place CPU build).
STAGE="$BUILD/stage"
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -r "$ROOT/zerofwht" "$STAGE/"
find "$STAGE/zerofwht" \( -name '_C*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
cp "$BUILD"/lib/zerofwht/_C*.so "$STAGE/zerofwht/"

cd "$STAGE"
ZEROFWHT_CUDA_OPS="$CUDA_OPS" PYTHONPATH="$STAGE" "$PY" - <<'PY'
import os, sys
import torch
import zerofwht
from zerofwht import _C, init, reference

print(f"build_cuda_ext: imported {zerofwht.__file__} with torch {torch.__version__}; "
      f"built_with_cuda={_C.built_with_cuda()}, cuda available={torch.cuda.is_available()}")
bad = []
if not _C.built_with_cuda():
    bad.append("zerofwht._C.built_with_cuda() is False")
for op in os.environ["ZEROFWHT_CUDA_OPS"].split(","):
    for key in ("CUDA", "CPU"):
        has = torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
        print(f"build_cuda_ext: {op} has a {key} kernel: {has}")
        if not has:
            bad.append(f"{op} has no {key} kernel")
# The CUDA transform's length limits as the Python backend table will read them (A100 / H100).
for code, smem, want in [(0, 227 * 1024, 27), (2, 227 * 1024, 27), (1, 227 * 1024, 26), (0, 163 * 1024, 27)]:
    got = _C.cuda_max_log_n(code, smem)
    print(f"build_cuda_ext: cuda_max_log_n(dtype code {code}, {smem // 1024} KB) = {got}")
    if got != want:
        bad.append(f"cuda_max_log_n({code}, {smem}) = {got}, expected {want}")
# The CPU kernels of the CUDA build (compiled by the same toolchain) still give the exact rules.
for name, fn, shape in [("zero", init.zero_init_, (5, 3)), ("hadamard", init.hadamard_, (6, 9)),
                        ("idiz", init.idiz_, (3, 5)), ("idic", init.idic_, (4, 2, 3, 3))]:
    w = torch.full(shape, float("nan"))
    fn(w, backend="cpp")
    if not torch.equal(w, reference.init_reference(name, shape, dtype=torch.float32)):
        bad.append(f"CPU {name} wrong through the CUDA build")
x = torch.randn(3, 100, dtype=torch.float64)
if not torch.allclose(zerofwht.fwht(x, backend="cpp"), reference.fwht_dense(x), rtol=1e-12, atol=1e-12):
    bad.append("CPU fwht wrong through the CUDA build")
print("build_cuda_ext: backend table:", [(b["name"], b["available"], b.get("reason")) for b in zerofwht.backends()])
print("build_cuda_ext:", "FAILED: " + "; ".join(bad) if bad else "OK")
sys.exit(1 if bad else 0)
PY
