#!/usr/bin/env python3
"""Ahead-of-time compile of every Triton FWHT kernel configuration (zerofwht.triton_fwht) for
sm_80 and sm_90 (docs/design.md): no GPU needed.

Every configuration ``triton_fwht.kernel_configs()`` lists (each kernel, pointer dtypes, constexpr
tile and warp count the launcher can choose for n = 2^0 .. 2^30) is compiled with
``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))`` in two argument
specializations, the ones Triton's JIT picks at run time:

* ``aligned``: pointers 16-byte aligned and sizes / strides multiples of 16 (the usual case:
  vectorized 16-byte loads and stores);
* ``generic``: nothing known (odd sizes or strides: scalar accesses).

The PTX goes through the ``ptxas-blackwell`` of the triton wheel (``ptxas-blackwell -v --gpu-name
sm_90a kernel.ptx``; the system ptxas of CUDA 13.0 rejects the PTX 9.4 of triton 3.9) for the
registers, spill stores / loads and stack frame; the shared memory is the compiler's figure.

Exit status 1 when a compile fails, a single-pass kernel spills (any kernel with --strict), or a
kernel needs more shared memory than the architecture gives one block (sm_80: 163 KB, sm_90:
227 KB). Runnable by hand:

    python scripts/aot_triton_fwht.py [--arch 80 90] [--variant aligned generic] [--jobs N]
                                      [--only SUBSTRING] [--quiet] [--strict]
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.pop("TRITON_INTERPRET", None)  # compile the real kernels
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED_LIMIT = {80: 163 * 1024, 90: 227 * 1024}  # max dynamic shared memory of one block (bytes)
VARIANTS = ("aligned", "generic")
PTR = {"float16": "*fp16", "bfloat16": "*bf16", "float32": "*fp32", "float64": "*fp64"}
# arguments that the JIT specializes as multiples of 16 in the aligned variant
ALIGNED_INTS = {"rows": ("d_in", "d_out", "sx", "sy"),
                "cols": ("stride_m", "valid_in", "d_out", "s_src", "s_dst")}
PTRS = {"rows": ("x_ptr", "y_ptr"), "cols": ("src_ptr", "dst_ptr")}
RE_REGS = re.compile(r"Used (\d+) registers")
RE_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def _dtype_name(d) -> str:
    return str(d).replace("torch.", "")


def config_name(cfg: dict) -> str:
    c = cfg["constexprs"]
    if cfg["kernel"] == "rows":
        tile = f"N=2^{c['LOG_N']:<2d} R={c['R']:<4d}"
        kind = "single" if cfg["single"] else "row-pass"
    else:
        tile = f"M=2^{c['LOG_M']:<2d} BC={c['BC']:<4d}"
        kind = "col-last" if cfg["last"] else "col-pass"
    return (f"{kind:8s} {_dtype_name(cfg['src']):>8s}->{_dtype_name(cfg['dst']):<8s} {tile} "
            f"warps={cfg['num_warps']:<2d}")


def signature(cfg: dict, variant: str):
    """(signature, constexprs, attrs) of the kernel of ``cfg`` for triton.compile."""
    from zerofwht import triton_fwht as tf
    kernel = tf.KERNELS[cfg["kernel"]]
    names = list(inspect.signature(kernel.fn).parameters)
    consts = dict(cfg["constexprs"])
    sig = {}
    for n in names:
        if n in PTRS[cfg["kernel"]]:
            sig[n] = PTR[_dtype_name(cfg["src"] if n in ("x_ptr", "src_ptr") else cfg["dst"])]
        elif n.isupper():
            sig[n] = "constexpr"
        elif n.startswith("scale"):
            sig[n] = "fp32"
        else:
            sig[n] = "i32"
    # the JIT turns int arguments equal to 1 into constants: segs of a single pass, a_blocks of
    # the last column pass always are 1 (other ones, e.g. a single row, depend on the input)
    if cfg["kernel"] == "rows" and cfg["single"]:
        sig["segs"] = "constexpr"
        consts["segs"] = 1
    if cfg["kernel"] == "cols" and cfg["last"]:
        sig["a_blocks"] = "constexpr"
        consts["a_blocks"] = 1
    attrs = {}
    if variant == "aligned":
        for n in PTRS[cfg["kernel"]] + ALIGNED_INTS[cfg["kernel"]]:
            attrs[(names.index(n),)] = [["tt.divisibility", 16]]
    return kernel, sig, consts, attrs


def compile_one(job) -> dict:
    arch, index, variant = job
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from zerofwht import triton_fwht as tf

    cfg = tf.kernel_configs()[index]
    res = dict(arch=arch, index=index, variant=variant, name=config_name(cfg), kernel=cfg["kernel"],
               single=cfg["single"])
    t0 = time.perf_counter()
    try:
        kernel, sig, consts, attrs = signature(cfg, variant)
        src = ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs)
        k = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                           options={"num_warps": cfg["num_warps"]})
    except Exception as exc:  # report, keep going
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        res["error"] = f"{type(exc).__name__}: {' | '.join(lines[-3:])}"
        return res
    res["seconds"] = time.perf_counter() - t0
    res["shared"] = int(k.metadata.shared)
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas-blackwell")
    gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "kernel.ptx")
        with open(path, "w") as f:
            f.write(k.asm["ptx"])
        p = subprocess.run([ptxas, "-v", "--gpu-name", gpu, path, "-o", os.path.join(d, "k.cubin")],
                           capture_output=True, text=True)
    out = p.stdout + p.stderr
    m_regs, m_spill = RE_REGS.search(out), RE_SPILL.search(out)
    if p.returncode != 0 or not m_regs or not m_spill:
        res["error"] = f"ptxas-blackwell failed (rc {p.returncode}): {out[-1500:]}"
        return res
    res["regs"] = int(m_regs.group(1))
    res["stack"], res["spill_st"], res["spill_ld"] = map(int, m_spill.groups())
    return res


def problems(r: dict, strict: bool) -> list:
    if "error" in r:
        return [r["error"]]
    out = []
    spills = r["stack"] or r["spill_st"] or r["spill_ld"]
    if spills and (r["single"] or strict):
        out.append(f"spills (stack {r['stack']} B, spill stores {r['spill_st']} B, loads {r['spill_ld']} B)")
    if r["shared"] > SHARED_LIMIT[r["arch"]]:
        out.append(f"shared memory {r['shared']} B > {SHARED_LIMIT[r['arch']]} B of sm_{r['arch']}")
    return out


def run(archs=(80, 90), variants=VARIANTS, only=None, jobs=None, indices=None) -> list:
    """Compile the selected configurations; a list of result dicts (see compile_one)."""
    from zerofwht import triton_fwht as tf
    return run_configs(tf.kernel_configs(), compile_one, config_name, archs, variants, only, jobs,
                       indices)


def run_configs(cfgs, compile_fn, name_fn, archs, variants, only=None, jobs=None, indices=None) -> list:
    """``compile_fn((arch, index, variant))`` over the chosen configurations (by index, or by a
    substring of ``name_fn(cfg)``), in parallel processes when there is more than one job."""
    chosen = [i for i in range(len(cfgs))
              if (indices is None or i in indices) and (only is None or only in name_fn(cfgs[i]))]
    work = [(a, i, v) for a in archs for i in chosen for v in variants]
    jobs = jobs or os.cpu_count() or 1
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            return list(pool.map(compile_fn, work))
    return [compile_fn(w) for w in work]


def parse_args(argv, doc: str):
    """The command line shared by the ahead-of-time scripts."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--variant", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default=None, help="compile only configurations whose name contains this")
    ap.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    ap.add_argument("--strict", action="store_true", help="fail on spills of multi-pass kernels too")
    return ap.parse_args(argv)


def report(results: list, strict: bool, quiet: bool) -> tuple:
    """Prints one line per kernel (failures always); returns (failures, results that compiled)."""
    bad = 0
    for r in results:
        issues = problems(r, strict)
        bad += bool(issues)
        head = f"sm_{r['arch']} {r['variant']:7s} {r['name']}"
        if issues:
            print(f"FAIL {head}: " + "; ".join(issues))
        elif not quiet:
            spill = r["spill_st"] + r["spill_ld"] + r["stack"]
            print(f"ok   {head}: {r['regs']:3d} registers, spills {spill} B, shared {r['shared']:6d} B, "
                  f"compile {r['seconds']:.1f}s")
    return bad, [r for r in results if "error" not in r]


def main(argv=None) -> int:
    args = parse_args(argv, __doc__)
    t0 = time.perf_counter()
    results = run(args.arch, args.variant, args.only, args.jobs)
    bad, ok = report(results, args.strict, args.quiet)
    spilled = [r for r in ok if r["stack"] or r["spill_st"] or r["spill_ld"]]
    n_cfg = len(results) // max(1, len(args.arch) * len(args.variant))
    print(f"aot_triton_fwht: {len(results)} kernels ({n_cfg} configurations x {len(args.arch)} archs "
          f"x {len(args.variant)} variants) in {time.perf_counter() - t0:.0f}s; max registers "
          f"{max((r['regs'] for r in ok), default=0)}, max shared "
          f"{max((r['shared'] for r in ok), default=0)} B, with spills {len(spilled)} "
          f"(single-pass {sum(r['single'] for r in spilled)}); failures {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
