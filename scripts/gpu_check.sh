#!/usr/bin/env bash
# Everything that needs a GPU, as one command: builds the extension for the visible GPU, runs the
# GPU tests, a compute-sanitizer sweep, an ncu look at the row kernel's shared-memory stores and
# the CUDA benchmark, each step under its own time box, and writes one summary.
#
#   scripts/gpu_check.sh OUTDIR [--quick] [--dry-run]        (or: make gpu-check OUT=OUTDIR)
#
# OUTDIR receives at most 5 files, all small: summary.md (device, versions, date, per-step status
# and duration, pass/fail counts, speed table), results.json (the same, raw), gpu_check.log (every
# step's output, each cut to its last 300 KB), bench.png (speed vs device-to-device copy).
# Steps (full / --quick time box, seconds): env 30/30, build 200/200, tests_fwht 170/75,
# tests_more 120/45 (init fills, HadamardLinear, threads/streams, CUDA graphs, > 2^31 elements,
# tests/test_fwht_cuda.py), sanitize memcheck 60/40, racecheck 45/25, synccheck 25/0, ncu 30/0,
# fht_build 90/0 (only when ZEROFWHT_FHT_SRC names a folder with a fast_hadamard_transform wheel
# or source tree), bench 75/35. A step never gets more than what is left of the total budget
# (520 s full, 225 s --quick; the summary is written after it, also when steps fail or time out).
# A failed step is logged and the next one runs; a step that needs what failed says so.
#
# --dry-run (CI, no GPU needed): the GPU steps are skipped with their reasons, the GPU tests are
# collected and skipped (ZEROFWHT_GPU_CHECK_DRY_RUN=1), the benchmark harness runs on the CPU at
# tiny sizes, and the summary is written: parsing, summary writing and time boxes are exercised.
# Without --dry-run on a machine without a GPU, the GPU steps are skipped for that reason.
# Test hook: ZEROFWHT_GPU_CHECK_INJECT_SLEEP=S adds a step "injected_sleep" running `sleep S`
# under a time box of ZEROFWHT_GPU_CHECK_INJECT_LIMIT seconds (default 2).
# Env: ZEROFWHT_PY (default python3), ZEROFWHT_FHT_SRC, MAX_JOBS (default: all cores).
#
# Budget estimate, from what was measured on 2026-12-06 on the 2-core Xeon guest without a GPU,
# loaded by seven other jobs (load average 12 on 2 cores: wall times there are ~6x CPU times):
#   - the whole extension (7 C++ files + 3 CUDA files) against CUDA torch 2.14.1 for sm_90 only,
#     MAX_JOBS=1: 1070 s wall; the longest files csrc/cpu AVX-512 kernel 430 s, the portable CPU
#     kernel 230 s, csrc/cuda/fwht.cu 90 s (every row-kernel template for one arch), the rest
#     under 2 min each. With 16 idle cores (ninja runs them in parallel) the build is bounded by
#     the AVX-512 file: about 70-90 s expected (box: 200 s). Without ninja torch builds the files
#     one after another: ~3 min, still inside the box.
#   - GPU-test selection on CPU tensors under TRITON_INTERPRET=1 (triton + torch backends, --quick
#     sizes, 206 tests of tests/gpu/test_gpu_fwht.py, all passed): 504 s wall, 58 s CPU. On the
#     GPU the kernels take microseconds; what costs is Triton's JIT (one compile per dtype x size
#     configuration, ~0.5-1 s cold, about 120 configurations in the full run) and the fp64
#     references: ~2-3 min expected for tests_fwht (box 170 s; 75 s with --quick's fewer sizes).
#   - the dry run of this script: 57-160 s wall, 10-12 s CPU on that loaded guest.
# Total (full): build ~1.5 + tests ~4.5 + sanitizer ~2 + bench ~1 min, each boxed, hard cap 520 s
# of steps + the summary: under 9 min. --quick: 225 s of steps.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

OUT="" QUICK=0 DRY=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    -*) echo "gpu_check: unknown option $a" >&2; exit 2 ;;
    *) [ -z "$OUT" ] && OUT=$a || { echo "gpu_check: one OUTDIR only (got $OUT and $a)" >&2; exit 2; } ;;
  esac
done
[ -n "$OUT" ] || { echo "usage: scripts/gpu_check.sh OUTDIR [--quick] [--dry-run]" >&2; exit 2; }
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PY=${ZEROFWHT_PY:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
STEPS="$WORK/steps.jsonl"
: >"$STEPS"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export ZEROFWHT_GPU_CHECK_QUICK=$QUICK
[ "$DRY" = 1 ] && export ZEROFWHT_GPU_CHECK_DRY_RUN=1
T_START=$(date +%s.%N)
if [ "$QUICK" = 1 ]; then BUDGET=225; else BUDGET=520; fi

elapsed() { awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# record NAME STATUS SECONDS LIMIT RC REASON
record() {
  "$PY" - "$STEPS" "$@" <<'PY'
import json, sys
path, name, status, secs, limit, rc, reason = sys.argv[1:8]
with open(path, "a") as f:
    f.write(json.dumps({"name": name, "status": status, "seconds": float(secs), "limit_s": float(limit),
                        "rc": int(rc), "reason": reason}) + "\n")
PY
  printf 'gpu_check: %-16s %-8s %7ss (box %ss)%s\n' "$1" "$2" "$3" "$4" "${6:+  $6}"
}

# step NAME LIMIT_S SKIP_REASON CMD... : runs CMD under `timeout` (SIGINT first, so pytest still
# writes its report; SIGKILL 10 s later), output to $WORK/NAME.log; never more than the budget left.
step() {
  local name=$1 limit=$2 skip=$3
  shift 3
  if [ -n "$skip" ]; then record "$name" skipped 0 "$limit" 0 "$skip"; return 0; fi
  local left
  left=$(awk -v b="$BUDGET" -v e="$(elapsed)" 'BEGIN { printf "%d", b - e }')
  if [ "$left" -lt 3 ]; then record "$name" skipped 0 "$limit" 0 "total budget of ${BUDGET}s used up"; return 0; fi
  [ "$left" -lt "$limit" ] && limit=$left
  local t0 t1 rc status reason=""
  t0=$(date +%s.%N)
  timeout -s INT -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  case $rc in
    0) status=ok ;;
    124|137) status=timeout; reason="killed by its ${limit}s time box" ;;
    *) status=failed; reason="exit status $rc" ;;
  esac
  record "$name" "$status" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" "$limit" "$rc" "$reason"
  [ "$status" = ok ]
}

status_of() {  # the recorded status of step $1 ('' if it has not run)
  "$PY" -c "import json,sys; s=[r['status'] for r in map(json.loads, open(sys.argv[1])) if r['name']==sys.argv[2]]; print(s[-1] if s else '')" "$STEPS" "$1"
}

echo "gpu_check: $(date -u +%FT%TZ) OUT=$OUT quick=$QUICK dry_run=$DRY work=$WORK"

# ---- 1. environment: device, versions, tools ------------------------------------------------
step env 30 "" "$PY" scripts/gpu_check_drive.py env --out "$WORK/env.json"
GPU=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('gpu_reason') or '')" "$WORK/env.json" 2>/dev/null \
      || echo "the environment probe failed")
ARCH=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('arch') or '')" "$WORK/env.json" 2>/dev/null || true)
[ "$DRY" = 1 ] && GPU="dry run (--dry-run)"
# GPU is empty when a GPU can be used, else the reason every GPU step is skipped

# ---- 2. build in place, this GPU's architecture only ------------------------------------------
step build 200 "$GPU" env TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS="${MAX_JOBS:-$(nproc)}" ZEROFWHT_CUDA=1 \
  "$PY" setup.py build_ext --inplace
NOBUILD=""
[ -z "$GPU" ] && [ "$(status_of build)" != ok ] && NOBUILD="the build step did not succeed"

# ---- 3. GPU tests (skipped with their reason without a GPU or in the dry run) ----------------
if [ "$QUICK" = 1 ]; then L1=75 L2=45; else L1=170 L2=120; fi
PYTEST=("$PY" -m pytest -q -rfEs -p no:cacheprovider -o console_output_style=classic)
step tests_fwht "$L1" "" "${PYTEST[@]}" --junitxml="$WORK/junit_tests_fwht.xml" tests/gpu/test_gpu_fwht.py
MORE=(tests/gpu/test_gpu_init_nn.py tests/gpu/test_gpu_stress.py "tests/test_kron.py::test_gpu_backends")
[ "$QUICK" = 1 ] || [ "$DRY" = 1 ] || MORE+=(tests/test_fwht_cuda.py)
step tests_more "$L2" "" "${PYTEST[@]}" --junitxml="$WORK/junit_tests_more.xml" "${MORE[@]}"

# ---- 4. compute-sanitizer over a small launch selection --------------------------------------
SAN_SKIP=${GPU:-$NOBUILD}
[ -z "$SAN_SKIP" ] && ! command -v compute-sanitizer >/dev/null && SAN_SKIP="compute-sanitizer not found on PATH"
QFLAG=""
[ "$QUICK" = 1 ] && QFLAG=--quick
if [ "$QUICK" = 1 ]; then SAN=("memcheck 40" "racecheck 25"); else SAN=("memcheck 60" "racecheck 45" "synccheck 25"); fi
for t in "${SAN[@]}"; do
  set -- $t
  step "sanitize_$1" "$2" "$SAN_SKIP" compute-sanitizer --tool "$1" --error-exitcode 9 --print-limit 20 \
    "$PY" scripts/gpu_check_drive.py sanitize --tool "$1" $QFLAG
done

# ---- 5. ncu: shared-memory store bank conflicts of the row kernel (phase A -> B exchange) -----
NCU_SKIP=${GPU:-$NOBUILD}
[ "$QUICK" = 1 ] && NCU_SKIP=${NCU_SKIP:-"--quick"}
[ -z "$NCU_SKIP" ] && ! command -v ncu >/dev/null && NCU_SKIP="ncu not found on PATH"
step ncu 30 "$NCU_SKIP" ncu --csv --target-processes all --kernel-name regex:fwht_rows_kernel --launch-count 6 \
  --metrics smsp__sass_inst_executed_op_shared_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum \
  "$PY" scripts/gpu_check_drive.py ncu

# ---- 6. fast_hadamard_transform (optional peer), then the benchmark ---------------------------
FHT_SKIP=${GPU}
[ -z "$FHT_SKIP" ] && [ -z "${ZEROFWHT_FHT_SRC:-}" ] && FHT_SKIP="ZEROFWHT_FHT_SRC not set (a folder with a fast_hadamard_transform wheel or source)"
[ -z "$FHT_SKIP" ] && [ "$QUICK" = 1 ] && FHT_SKIP="--quick"
step fht_build 90 "$FHT_SKIP" "$PY" scripts/gpu_check_drive.py fht --src "${ZEROFWHT_FHT_SRC:-}" --dest "$WORK/fht"
[ -d "$WORK/fht/site" ] && export ZEROFWHT_FHT_PATH="$WORK/fht/site"
BENCH_ARGS=(--out "$WORK/bench.json")
[ "$QUICK" = 1 ] && BENCH_ARGS+=(--quick)
if [ -n "$GPU" ]; then
  # no GPU: the harness itself on the CPU at tiny sizes (exercises timing, JSON, table and plot)
  step bench 60 "" "$PY" scripts/gpu_bench.py --device cpu --tiny "${BENCH_ARGS[@]}" --note "no GPU ($GPU): CPU smoke run of the harness, not a GPU measurement"
else
  if [ "$QUICK" = 1 ]; then LB=35; else LB=75; fi
  step bench "$LB" "$NOBUILD" "$PY" scripts/gpu_bench.py --device cuda "${BENCH_ARGS[@]}"
fi

# ---- test hook: a step that overruns its box ------------------------------------------------
if [ -n "${ZEROFWHT_GPU_CHECK_INJECT_SLEEP:-}" ]; then
  step injected_sleep "${ZEROFWHT_GPU_CHECK_INJECT_LIMIT:-2}" "" sleep "$ZEROFWHT_GPU_CHECK_INJECT_SLEEP"
fi

# ---- 7. summary (always) --------------------------------------------------------------------
echo "gpu_check: steps done after $(elapsed)s; writing the summary"
timeout -k 5 60 "$PY" scripts/gpu_check_summary.py --work "$WORK" --out "$OUT" --quick "$QUICK" --dry-run "$DRY" \
  --elapsed "$(elapsed)" --budget "$BUDGET"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$OUT/summary.md" ]; then
  # the summary writer itself failed: still leave the raw step records and logs behind
  { echo "# GPU check: summary writer failed (exit $rc)"; echo; echo '```'; cat "$STEPS"; echo '```'; } >"$OUT/summary.md"
  for f in "$WORK"/*.log; do echo "==== $(basename "$f")"; tail -c 300000 "$f"; done >"$OUT/gpu_check.log" 2>/dev/null
fi
rm -rf "$WORK"
echo "gpu_check: $(elapsed)s in all; summary: $OUT/summary.md"
grep -q '"status": "failed"\|"status": "timeout"' "$OUT/results.json" 2>/dev/null && exit 1
exit 0
