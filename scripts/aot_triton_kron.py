#!/usr/bin/env python3
"""Ahead-of-time compile of every Triton K * 2^k kernel configuration (zerofwht.triton_kron) for
sm_80 and sm_90, without a GPU, as scripts/aot_triton_fwht.py does for the power-of-two kernels
(whose ptxas call, limits and problem rules it reuses): ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", arch, 32))``, then ``ptxas-blackwell -v`` for registers and spills.

Exit status 1 when a compile fails, a kernel spills (``--strict``: any spill; default: a fused
kernel that spills) or needs more shared memory than one block gets. Runnable by hand:

    python scripts/aot_triton_kron.py [--arch 80 90] [--variant aligned generic] [--jobs N]
                                      [--only SUBSTRING] [--quiet] [--strict]
"""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
os.environ.pop("TRITON_INTERPRET", None)  # compile the real kernels
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (ROOT, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import aot_triton_fwht as base_aot  # noqa: E402

VARIANTS = base_aot.VARIANTS
PTRS = {"fused": ("x_ptr", "h_ptr", "y_ptr"), "kstage": ("w_ptr", "h_ptr", "y_ptr")}
ALIGNED_INTS = {"fused": ("d_in", "d_out", "sx", "sy"), "kstage": ("d_out", "sw", "sy")}


def config_name(cfg: dict) -> str:
    c = cfg["constexprs"]
    tile = (f"P=2^{c['P'].bit_length() - 1:<2d} KP={c['KP']:<3d} R={c['R']:<3d}" if cfg["kernel"] == "fused"
            else f"P=2^{c['P'].bit_length() - 1:<2d} BM={c['BM']} BN={c['BN']} BK={c['BK']}")
    return (f"{cfg['kernel']:6s} {base_aot._dtype_name(cfg['src']):>8s}->{base_aot._dtype_name(cfg['dst']):<8s} "
            f"{tile} warps={cfg['num_warps']}")


def signature(cfg: dict, variant: str):
    from zerofwht import triton_kron as tk
    kernel = tk.KERNELS[cfg["kernel"]]
    names = list(inspect.signature(kernel.fn).parameters)
    sig = {}
    for n in names:
        if n == "h_ptr":
            sig[n] = "*fp64" if cfg["constexprs"]["F64"] else "*fp32"
        elif n in PTRS[cfg["kernel"]]:
            sig[n] = base_aot.PTR[base_aot._dtype_name(cfg["src"] if n in ("x_ptr", "w_ptr") else cfg["dst"])]
        elif n.isupper():
            sig[n] = "constexpr"
        elif n.startswith("scale"):
            sig[n] = "fp32"
        else:
            sig[n] = "i32"
    attrs = {}
    if variant == "aligned":
        for n in PTRS[cfg["kernel"]] + ALIGNED_INTS[cfg["kernel"]]:
            attrs[(names.index(n),)] = [["tt.divisibility", 16]]
    return kernel, sig, dict(cfg["constexprs"]), attrs


def compile_one(job) -> dict:
    arch, index, variant = job
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from zerofwht import triton_kron as tk
    cfg = tk.kernel_configs()[index]
    res = dict(arch=arch, index=index, variant=variant, name=config_name(cfg), kernel=cfg["kernel"],
               single=cfg["kernel"] == "fused")
    t0 = time.perf_counter()
    try:
        kernel, sig, consts, attrs = signature(cfg, variant)
        k = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs),
                           target=GPUTarget("cuda", arch, 32), options={"num_warps": cfg["num_warps"]})
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
    m_regs, m_spill = base_aot.RE_REGS.search(out), base_aot.RE_SPILL.search(out)
    if p.returncode != 0 or not m_regs or not m_spill:
        res["error"] = f"ptxas-blackwell failed (rc {p.returncode}): {out[-1500:]}"
        return res
    res["regs"] = int(m_regs.group(1))
    res["stack"], res["spill_st"], res["spill_ld"] = map(int, m_spill.groups())
    return res


def run(archs=(80, 90), variants=VARIANTS, only=None, jobs=None, indices=None) -> list:
    from zerofwht import triton_kron as tk
    return base_aot.run_configs(tk.kernel_configs(), compile_one, config_name, archs, variants, only,
                                jobs, indices)


def main(argv=None) -> int:
    args = base_aot.parse_args(argv, __doc__)
    t0 = time.perf_counter()
    results = run(args.arch, args.variant, args.only, args.jobs)
    bad, ok = base_aot.report(results, args.strict, args.quiet)
    print(f"aot_triton_kron: {len(results)} kernels in {time.perf_counter() - t0:.0f}s; max registers "
          f"{max((r['regs'] for r in ok), default=0)}, max shared {max((r['shared'] for r in ok), default=0)} B; "
          f"failures {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
