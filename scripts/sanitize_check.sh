#!/usr/bin/env bash
# The CPU extension built with AddressSanitizer + UndefinedBehaviorSanitizer, and a fast selection
# of the tests run against it:
#   1. builds zerofwht._C with ZEROFWHT_SANITIZE=1 (CPU kernels only, -O1, see setup.py) into a
#      build dir of its own (env ZEROFWHT_SANITIZE_BUILD, default build/sanitize; its object files
#      are reused by the next run), never over the repository's in-place build;
#   2. stages the Python package with that _C in the build dir;
#   3. runs, with libasan preloaded (python itself is not instrumented), the tests of the transform
#      kernels (every instruction set this CPU runs, every dtype, strided / out= / in-place /
#      folded / streamed paths), the CPU output cache, the init fill kernel, the bad-argument
#      tests, direct torch.ops calls with odd layouts and bad arguments (test_raw_op_safety.py) and
#      the fused K*2^k kernel (test_kron_cpp.py, without its nvcc compiles).
# Any sanitizer report fails the run: ASan aborts at its first error and UBSan is built with
# -fno-sanitize-recover. Leak detection is off, as CPython and torch leak by design at exit.
# Usage: scripts/sanitize_check.sh [extra pytest args]   (env: PYTHON, default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
BUILD=${ZEROFWHT_SANITIZE_BUILD:-$ROOT/build/sanitize}
export MAX_JOBS=${MAX_JOBS:-2}

t0=$(date +%s)
mkdir -p "$BUILD"
ZEROFWHT_SANITIZE=1 "$PY" setup.py -q build_ext --build-lib "$BUILD/lib" --build-temp "$BUILD/temp" \
  >"$BUILD/build.log" 2>&1 || { tail -60 "$BUILD/build.log" >&2; echo "sanitize_check: BUILD FAILED (log: $BUILD/build.log)" >&2; exit 1; }
grep -m1 "zerofwht: building" "$BUILD/build.log" || true
t1=$(date +%s)
echo "sanitize_check: built in $(( t1 - t0 ))s"

# Stage: the package's Python sources + the sanitized _C (never the repo's in-place build).
STAGE="$BUILD/stage"
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -r "$ROOT/zerofwht" "$STAGE/"
find "$STAGE/zerofwht" \( -name '_C*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
cp "$BUILD"/lib/zerofwht/_C*.so "$STAGE/zerofwht/"

LIBASAN=$(${CXX:-c++} -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize_check: libasan.so not found ($LIBASAN)" >&2; exit 1; }
# libstdc++ right after libasan: python does not link it, and ASan resolves the real __cxa_throw
# when it starts; without it the first C++ exception (any TORCH_CHECK) aborts in ASan's interceptor.
LIBSTDCXX=$(${CXX:-c++} -print-file-name=libstdc++.so.6)
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$STAGE"  # `python -m pytest` puts the cwd first on sys.path: the staged package is imported
"$PY" -c "import zerofwht._C as C, sys; f = C.__file__; print('sanitize_check: testing', f, 'isas', C.supported_cpu_isas()); sys.exit(0 if f.startswith('$STAGE') else 1)"
T="$ROOT/tests"
"$PY" -m pytest -q -x -p no:cacheprovider --rootdir "$ROOT" \
  "$T/test_cpu_cache.py" "$T/test_errors.py" "$T/test_raw_op_safety.py" "$T/test_fwht_folded.py" "$T/test_fwht_strided_short_rows.py" \
  "$T/test_init.py" "$T/test_kron_cpp.py" \
  "$T/test_fwht.py" -m "not slow" \
  -k "(not test_fwht.py or (cpp and not large and not l3 and not 2_22 and not every_n)) and not cuda_kernel" "$@"
echo "sanitize_check: OK (build $(( t1 - t0 ))s, tests $(( $(date +%s) - t1 ))s)"
