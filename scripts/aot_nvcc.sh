#!/usr/bin/env bash
# Ahead-of-time check of the torch-free CUDA kernels without a GPU (docs/design.md):
#   1. nvcc -c csrc/cuda/init_fill.cu and csrc/cuda/fwht.cu for sm_80 and sm_90 with -Xptxas -v; fails
#      on any spill, stack frame or local memory in a kernel;
#   2. builds tests/init_cuda_emulate.cu (the init kernel body run for every thread of its grid on
#      the host, against the C++ CPU kernel and the element rule) and runs it;
#   3. builds tests/fwht_cuda_emulate.cu (the transform's index arithmetic checked exhaustively,
#      bank conflicts, and the kernel bodies run on the host against a butterfly, bit for bit)
#      and runs it.
# Usage: scripts/aot_nvcc.sh [cases]   (env: NVCC, ZEROFWHT_AOT_DIR, default build/aot)
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
OUT=${ZEROFWHT_AOT_DIR:-build/aot}
CASES=${1:-3000}
[ -x "$NVCC" ] || { echo "aot_nvcc: nvcc not found (set NVCC=...)" >&2; exit 2; }
mkdir -p "$OUT"
FLAGS=(-O3 -std=c++17 -lineinfo -diag-suppress=177 -Icsrc)
ARCHS=(-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90)

echo "aot_nvcc: $("$NVCC" --version | tail -1)"
log="$OUT/ptxas.txt"
: >"$log"
for src in init_fill fwht; do
  "$NVCC" -c "${FLAGS[@]}" "${ARCHS[@]}" -Xptxas -v "csrc/cuda/$src.cu" -o "$OUT/$src.o" >>"$log" 2>&1 || {
    cat "$log" >&2; echo "aot_nvcc: FAILED to compile csrc/cuda/$src.cu" >&2; exit 1; }
done
# One line per kernel and arch: registers, stack, spills.
python3 - "$log" <<'PY'
import re, shutil, subprocess, sys
def demangle(n):
    tool = shutil.which("c++filt") or shutil.which("cu++filt")
    if tool:
        n = subprocess.run([tool, n], capture_output=True, text=True).stdout.strip() or n
    n = re.sub(r"\(anonymous namespace\)::", "", n)
    return n.replace("zerofwht::init::cuda::", "").replace("zerofwht::cuda::", "")
text = open(sys.argv[1]).read()
bad = 0
entries = re.split(r"ptxas info\s*: Compiling entry function ", text)[1:]
for e in entries:
    name = re.match(r"'([^']+)' for '(sm_\d+)'", e)
    props = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", e)
    regs = re.search(r"Used (\d+) registers", e)
    lmem = re.search(r"(\d+) bytes lmem", e)
    stack, st, ld = map(int, props.groups())
    local = int(lmem.group(1)) if lmem else 0
    ok = stack == 0 and st == 0 and ld == 0 and local == 0
    bad += not ok
    kern = demangle(name.group(1))
    print(f"{'ok  ' if ok else 'FAIL'} {name.group(2)} {kern}: {regs.group(1)} registers, stack {stack} B, "
          f"spill stores {st} B, spill loads {ld} B, local {local} B")
if not entries:
    print("aot_nvcc: no kernels found in the ptxas output"); sys.exit(1)
print(f"aot_nvcc: {len(entries)} kernels, {bad} with spills / stack / local memory")
sys.exit(1 if bad else 0)
PY

echo "aot_nvcc: host emulation of the CUDA kernel ($CASES random cases)"
"$NVCC" "${FLAGS[@]}" -DZEROFWHT_CUDA_EMULATE -gencode arch=compute_90,code=sm_90 \
  tests/init_cuda_emulate.cu csrc/cuda/init_fill.cu csrc/cpu/init_fill.cpp -o "$OUT/init_cuda_emulate"
"$OUT/init_cuda_emulate" "$CASES"

echo "aot_nvcc: host emulation of the CUDA transform ($CASES random cases)"
"$NVCC" "${FLAGS[@]}" -DZEROFWHT_CUDA_EMULATE -gencode arch=compute_90,code=sm_90 \
  tests/fwht_cuda_emulate.cu csrc/cuda/fwht.cu -o "$OUT/fwht_cuda_emulate"
"$OUT/fwht_cuda_emulate" "$CASES"
echo "aot_nvcc: OK"
