#!/usr/bin/env python3
"""Ahead-of-time compile of every Triton kernel configuration of zerofwht.triton_init for sm_80
and sm_90 (docs/design.md): no GPU needed. For each configuration it reports the registers,
spill stack, local and shared memory (read from the cubin with the cuobjdump that ships in the
triton wheel) and fails (exit 1) when a compile fails or a kernel spills / uses local memory.

With --ptxas it also runs the ptxas-blackwell of the triton wheel as `ptxas-blackwell -v` on
each kernel's PTX (the system ptxas of CUDA 13.0 rejects the PTX that triton 3.9 emits) and
fails on any spill it reports.

Usage: python scripts/aot_triton.py [--arch 80 90] [--jobs N] [--quiet] [--ptxas]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.pop("TRITON_INTERPRET", None)  # compile the real kernels

RES = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


PTXAS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def compile_one(job):
    arch, cfg, use_ptxas = job
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from zerofwht import triton_init as ti

    consts = {k: cfg[k] for k in ("KIND", "ROW_VARIES", "BLOCK_O", "BLOCK_I", "USE_POPC")}
    t0 = time.perf_counter()
    try:
        src = ASTSource(fn=ti._init_fill_kernel, signature=ti.signature(cfg["elem_bytes"]),
                        constexprs=consts)
        k = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                           options={"num_warps": ti.NUM_WARPS})
    except Exception as exc:  # report, keep going
        return dict(arch=arch, cfg=cfg, error=f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - t0
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(k.asm["cubin"])
        f.flush()
        out = subprocess.run([cuobjdump, "-res-usage", f.name], capture_output=True, text=True).stdout
    m = RES.search(out)
    if not m:
        return dict(arch=arch, cfg=cfg, error=f"no resource usage in cuobjdump output: {out[-300:]}")
    reg, stack, shared, local = map(int, m.groups())
    res = dict(arch=arch, cfg=cfg, regs=reg, stack=stack, shared=shared, local=local,
               shared_meta=k.metadata.shared, ptx_bytes=len(k.asm["ptx"]), seconds=seconds)
    if use_ptxas:
        ptxas = os.path.join(os.path.dirname(cuobjdump), "ptxas-blackwell")
        with tempfile.TemporaryDirectory() as d:
            ptx = os.path.join(d, "k.ptx")
            with open(ptx, "w") as f:
                f.write(k.asm["ptx"])
            gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
            p = subprocess.run([ptxas, "-v", "--gpu-name", gpu, ptx, "-o", os.path.join(d, "k.cubin")],
                               capture_output=True, text=True)
        pm = PTXAS.search(p.stdout + p.stderr)
        if p.returncode or not pm:
            return dict(arch=arch, cfg=cfg, error=f"ptxas-blackwell failed: {(p.stdout + p.stderr)[-300:]}")
        res["stack"] = max(res["stack"], int(pm.group(1)))
        res["spill"] = int(pm.group(2)) + int(pm.group(3))
        res["local"] = max(res["local"], res["spill"])
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    ap.add_argument("--ptxas", action="store_true",
                    help="also check spills with `ptxas-blackwell -v` on the PTX (slower)")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from zerofwht import triton_init as ti

    jobs = [(arch, cfg, args.ptxas) for arch in args.arch for cfg in ti.configs()]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(compile_one, jobs))
    else:
        results = [compile_one(j) for j in jobs]
    bad = 0
    for r in results:
        c = r["cfg"]
        name = (f"sm_{r['arch']} int{8 * c['elem_bytes']} KIND={c['KIND']} ROW_VARIES={int(c['ROW_VARIES'])} "
                f"BLOCK={c['BLOCK_O']}x{c['BLOCK_I']}")
        if "error" in r:
            bad += 1
            print(f"FAIL {name}: {r['error']}")
            continue
        problem = r["stack"] > 0 or r["local"] > 0
        bad += problem
        if problem or not args.quiet:
            print(f"{'FAIL' if problem else 'ok  '} {name}: {r['regs']} registers, spill stack "
                  f"{r['stack']} B, local {r['local']} B, shared {r['shared']} B, compile "
                  f"{r['seconds']:.2f}s")
    ok = [r for r in results if "error" not in r]
    if ok:
        print(f"aot_triton: {len(results)} kernels ({len(ti.configs())} configurations x "
              f"{len(args.arch)} archs) in {time.perf_counter() - t0:.0f}s; max registers "
              f"{max(r['regs'] for r in ok)}, max shared {max(r['shared'] for r in ok)} B, "
              f"spills/local in {sum(r['stack'] > 0 or r['local'] > 0 for r in ok)}; failures {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
