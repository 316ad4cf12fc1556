"""Benchmark of the fused K*2^k transform (zerofwht::fwht_kron, C++ CPU kernel) on CPU, fp32.

For each n = K * 2^k (default 768 = 12*64, 3072 = 12*256, 11008 = 172*64, 14336 = 28*512; any
supported n with --sizes, split as zerofwht.bases.split(n)) and about
2^22 input elements per call, interleaved rounds (each round times every method once, in a rotating
order), medians over rounds, per thread count:
  fused    torch.ops.zerofwht.fwht_kron(x, H_K, n, n, 1.0)
  padded   (a) our power-of-two transform of the next power of two, truncated to n outputs
  twopass  (b) our power-of-two transform of the K sub-rows + torch.matmul with H_K (BLAS)
  dense    (c) x @ (H_K kron H_M)^T with the n x n matrix (fewer rows; time scaled per element)
  copy     (d) a copy of the input (x.clone())
On a machine shared with other work the medians carry the other work's noise; the minima (also
printed) are the least disturbed round of each method. One-thread runs are timed with the thread's
CPU time (--clock auto), which leaves out the time other processes hold the core.
Ratios are method time / fused time (> 1: the fused op is faster). H_K: a random +-1 matrix
(the kernel's cost does not depend on the entries).

Usage: python scripts/bench_kron.py [--rounds 7] [--threads 1,2] [--sizes 768,3072,11008,14336]
                                   [--out PREFIX]   (writes PREFIX.json and, with matplotlib, PREFIX.png)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import scipy.linalg
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # this checkout's zerofwht, not an installed one
    sys.path.insert(0, ROOT)
import zerofwht  # noqa: E402  (registers the ops)



def timed(fn, clock):
    t0 = clock()
    fn()
    return clock() - t0


def bench(n, threads, rounds, elems, clock):
    torch.set_num_threads(threads)
    k, m = zerofwht.bases.split(n)
    rows = max(1, elems // n)
    g = torch.Generator().manual_seed(n)
    x = torch.randn(rows, n, generator=g)
    base = (torch.randint(0, 2, (k, k), generator=g) * 2 - 1).float()
    p = 1 << (n - 1).bit_length()
    # dense: few rows (the n x n product costs n flops per element); per-element time
    dense_rows = max(2, min(rows, (1 << 28) // (n * n)))
    hd = torch.kron(base, torch.tensor(scipy.linalg.hadamard(m), dtype=torch.float32)).T.contiguous()
    xd = x[:dense_rows].contiguous()
    ops = torch.ops.zerofwht
    methods = {
        "fused": (lambda: ops.fwht_kron(x, base, n, n, 1.0), rows),
        "padded": (lambda: ops.fwht(x, p, n, 1.0), rows),
        "twopass": (lambda: torch.matmul(base, ops.fwht(x.view(rows * k, m), m, m, 1.0).view(rows, k, m)).view(rows, n), rows),
        "dense": (lambda: xd @ hd, dense_rows),
        "copy": (lambda: x.clone(), rows),
    }
    # the fused op against the two-pass result once (same math)
    torch.testing.assert_close(methods["fused"][0](), methods["twopass"][0](), rtol=1e-4, atol=1e-3)
    names = list(methods)
    for name in names:  # warm up (allocations, caches)
        methods[name][0]()
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn, nrows = methods[name]
            times[name].append(timed(fn, clock) / (nrows * n) * 1e9)  # ns per input element
    return ({name: statistics.median(v) for name, v in times.items()},
            {name: min(v) for name, v in times.items()})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sizes", default="768,3072,11008,14336")
    ap.add_argument("--elems", type=int, default=1 << 22)
    ap.add_argument("--clock", choices=("auto", "wall"), default="auto",
                    help="auto: thread CPU time on one thread, wall clock on more; wall: wall clock always")
    ap.add_argument("--out", help="write PREFIX.json (every median and min) and PREFIX.png (medians)")
    args = ap.parse_args()
    records = []
    print(f"zerofwht ({os.path.dirname(zerofwht.__file__)}) fwht_kron CPU benchmark, fp32, ~{args.elems} elements per call, {args.rounds} interleaved "
          f"rounds, medians; ISA {zerofwht._C.cpu_isa()}; torch {torch.__version__}")
    print("ns per input element (dense: per element of fewer rows); ratio = method / fused")
    hdr = f"{'thr':>3} {'n':>6} {'K*M':>8} {'stat':>6} {'fused':>7} {'padded':>7} {'twopass':>8} {'dense':>8} {'copy':>6} | " \
          f"{'pad/f':>6} {'2pass/f':>7} {'dense/f':>8} {'copy/f':>6}"
    print(hdr)
    for threads in [int(t) for t in args.threads.split(",")]:
        for n in [int(s) for s in args.sizes.split(",")]:
            k, m = zerofwht.bases.split(n)
            # One thread: the thread's CPU time (time spent preempted by other processes is not
            # counted); two threads: wall-clock time.
            clock = time.thread_time if threads == 1 and args.clock == "auto" else time.perf_counter
            for stat, t in zip(("median", "min"), bench(n, threads, args.rounds, args.elems, clock)):
                records.append({"threads": threads, "n": n, "K": k, "M": m, "stat": stat, "ns_per_element": t})
                f = t["fused"]
                print(f"{threads:>3} {n:>6} {f'{k}*{m}':>8} {stat:>6} {f:7.3f} {t['padded']:7.3f} {t['twopass']:8.3f} "
                      f"{t['dense']:8.2f} {t['copy']:6.3f} | {t['padded'] / f:6.2f} {t['twopass'] / f:7.2f} "
                      f"{t['dense'] / f:8.1f} {t['copy'] / f:6.2f}", flush=True)
    if args.out:
        meta = {"isa": zerofwht._C.cpu_isa(), "torch": torch.__version__, "rounds": args.rounds,
                "elements_per_call": args.elems, "date": time.strftime("%Y-%m-%d %H:%M")}
        with open(args.out + ".json", "w") as fh:
            json.dump({"meta": meta, "records": records}, fh, indent=1)
        print(f"wrote {args.out}.json")
        plot(records, meta, args.out + ".png")


def plot(records, meta, path):
    """Bars per n (one panel per thread count): each method's median time over the fused op's.
    Replot a saved run: python -c "import json, bench_kron as b; d = json.load(open('X.json'));
    b.plot(d['records'], d['meta'], 'X.png')" (from scripts/)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    medians = [r for r in records if r["stat"] == "median"]
    threads = sorted({r["threads"] for r in medians})
    methods = ("padded", "twopass", "copy")
    width = max(7.0, 0.9 * len({r["n"] for r in medians}) + 2)
    fig, axes = plt.subplots(len(threads), 1, figsize=(width, 3.8 * len(threads)), squeeze=False)
    for ax, thr in zip(axes[:, 0], threads):
        rows = [r for r in medians if r["threads"] == thr]
        for i, name in enumerate(methods):
            ratios = [r["ns_per_element"][name] / r["ns_per_element"]["fused"] for r in rows]
            ax.bar([j + (i - 1) * 0.27 for j in range(len(rows))], ratios, width=0.27, label=name)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(rows)), [f"{r['n']}\n{r['K']}·{r['M']}" for r in rows])
        ax.set_ylabel("method time / fused time (> 1: fused faster)")
        ax.set_title(f"fwht_kron, CPU fp32, {thr} thread(s), {meta['isa']}")
        ax.legend()
    fig.suptitle(f"K·2^k transform: medians of {meta['rounds']} interleaved rounds, {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
