"""Benchmark of the fused K*2^k transform (zerofwht.fwht(x, n=K * 2**k)) on CPU, fp32: more sizes
and thread counts than the ``kron`` section of ``python -m zerofwht.bench``, the same methods
(zerofwht/bench/kron.py: fused, padded, twopass, copy) plus

  dense    x @ (H_K kron H_M)^T with the n x n matrix (fewer rows; time per element)

For each n = K * 2^k (default 768 = 12*64, 3072 = 12*256, 11008 = 172*64, 14336 = 28*512; any
supported n with --sizes, split as zerofwht.bases.split(n)) and about --elems input elements per
call, the methods are called in turn for --rounds rounds (the project's harness,
zerofwht.bench.timing.time_alternating) and the medians reported, in ns per input element. One
thread is timed with the thread's CPU time (--clock auto: the time other processes hold the core
is left out), more threads with the wall clock. Ratios are method time / fused time (> 1: the
fused op is faster).

Usage: python scripts/bench_kron.py [--rounds 9] [--threads 1,2] [--sizes 768,3072,11008,14336]
                                   [--out PREFIX]   (writes PREFIX.json and, with matplotlib, PREFIX.png)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # this checkout's zerofwht, not an installed one
    sys.path.insert(0, ROOT)
import zerofwht  # noqa: E402
from zerofwht import bases, reference  # noqa: E402
from zerofwht.bench.kron import METHODS, kron_methods, kron_plot  # noqa: E402
from zerofwht.bench.timing import time_alternating  # noqa: E402


def bench(n, threads, rounds, elems, clock):
    torch.set_num_threads(threads)
    k, m = bases.split(n)
    rows = max(1, elems // n)
    fns = kron_methods(n, rows)
    # dense: few rows (the n x n product costs n flops per element); per-element time below
    dense_rows = max(2, min(rows, (1 << 28) // (n * n)))
    hd = reference.hadamard_matrix(n, dtype=torch.float32).T.contiguous()
    xd = torch.randn(dense_rows, n)
    fns["dense"] = lambda: xd @ hd
    med, _ = time_alternating(fns, "cpu", budget_s=0.0, min_reps=rounds, max_reps=rounds, clock=clock)
    return {name: med[name] / ((dense_rows if name == "dense" else rows) * n) * 1e9 for name in fns}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sizes", default="768,3072,11008,14336")
    ap.add_argument("--elems", type=int, default=1 << 22)
    ap.add_argument("--clock", choices=("auto", "wall"), default="auto",
                    help="auto: thread CPU time on one thread, wall clock on more; wall: wall clock always")
    ap.add_argument("--out", help="write PREFIX.json (every median) and PREFIX.png (ratios)")
    args = ap.parse_args()
    date = time.strftime("%Y-%m-%d %H:%M")
    print(f"zerofwht ({os.path.dirname(zerofwht.__file__)}) K*2^k CPU benchmark, fp32, ~{args.elems} elements per "
          f"call, {args.rounds} rounds, medians; ISA {zerofwht._C.cpu_isa()}; torch {torch.__version__}; {date}")
    print("ns per input element (dense: per element of fewer rows); ratio = method / fused")
    print(f"{'thr':>3} {'n':>6} {'K*M':>8} {'fused':>7} {'padded':>7} {'twopass':>8} {'dense':>8} {'copy':>6} | "
          f"{'pad/f':>6} {'2pass/f':>7} {'dense/f':>8} {'copy/f':>6}")
    records = []
    for threads in [int(t) for t in args.threads.split(",")]:
        clock = time.thread_time if threads == 1 and args.clock == "auto" else time.perf_counter
        for n in [int(s) for s in args.sizes.split(",")]:
            k, m = bases.split(n)
            t = bench(n, threads, args.rounds, args.elems, clock)
            for method in (*METHODS, "dense"):
                records.append(dict(section="kron", device="cpu", threads=threads, n=n, K=k, M=m,
                                    method=method, dtype="float32", ns_per_element=t[method]))
            f = t["fused"]
            print(f"{threads:>3} {n:>6} {f'{k}*{m}':>8} {f:7.3f} {t['padded']:7.3f} {t['twopass']:8.3f} "
                  f"{t['dense']:8.2f} {t['copy']:6.3f} | {t['padded'] / f:6.2f} {t['twopass'] / f:7.2f} "
                  f"{t['dense'] / f:8.1f} {t['copy'] / f:6.2f}", flush=True)
    if args.out:
        meta = {"isa": zerofwht._C.cpu_isa(), "torch": torch.__version__, "rounds": args.rounds,
                "elements_per_call": args.elems, "date": date, "clock": args.clock}
        with open(args.out + ".json", "w") as fh:
            json.dump({"meta": meta, "records": records}, fh, indent=1)
        print(f"wrote {args.out}.json")
        if kron_plot(records, meta, args.out + ".png"):
            print(f"wrote {args.out}.png")


if __name__ == "__main__":
    main()
