"""Plot and tabulate the JSON records of an external peer_bench.py (a cross-check outside this repository): zerofwht against the public CPU FWHTs.

    python scripts/plot_peer_bench.py RUN1.json [RUN2.json ...] --png OUT.png [--dtype float32]

With several runs, each cell is the median over the runs. Prints, per thread count, a markdown
table of ns per element (copy, zerofwht out of place, zerofwht in place when the runs have it,
the in-place peers) and zerofwht's speed-up over the fastest peer (every peer variant the tool
measured, in place or not), then the per-run speed-ups as "median (min-max)". The PNG shows GB/s
(one read + one write of the tensor) versus n, one panel per thread count.

zerofwht in place is measured with a second extra:
    --extra zerofwht:fwht --extra zerofwht:fwht_:none:torch:inplace
(the tool then refills its buffer before every call, as it does for the in-place peers).
"""
from __future__ import annotations

import argparse
import collections
import json
import statistics

PEERS = {  # peer_bench keys of the public FWHTs, and how the tables name them
    "fht_cpu_inplace": "fht-cpu (in place)",
    "ffht_inplace": "ffht (in place)",
    "fht_cpu_oop": "fht-cpu (oop)",
    "ffht_oop": "ffht (oop)",
}
COPY = "copy_into"
OURS, OURS_INPLACE = "zerofwht", "zerofwht_inplace"  # zerofwht.fwht (out of place), zerofwht.fwht_


def load(paths, dtype):
    """runs[i][(threads, k)][key] = ns per element."""
    runs = []
    for path in paths:
        cells = collections.defaultdict(dict)
        for r in json.load(open(path))["records"]:
            if r.get("status") == "ok" and r.get("ns_per_elem") is not None and r.get("dtype", dtype) == dtype:
                key = r["key"]
                if "zerofwht" in key:
                    key = OURS_INPLACE if r.get("mode") == "inplace" else OURS
                cells[(r["threads"], r["k"])][key] = r["ns_per_elem"]
        runs.append(cells)
    return runs


def speedup(cell, ours=OURS):
    best = min((k for k in PEERS if k in cell), key=lambda k: cell[k])
    return best, cell[best] / cell[ours]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("--png", default=None)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)
    runs = load(args.json, args.dtype)
    keys = sorted(set().union(*[set(r) for r in runs]))
    med = {tk: {name: statistics.median(r[tk][name] for r in runs if name in r.get(tk, {}))
                for name in set().union(*[set(r.get(tk, {})) for r in runs])} for tk in keys}
    threads = sorted({t for t, _ in keys})
    inplace = any(OURS_INPLACE in m for m in med.values())
    for t in threads:
        print(f"\n{t} thread(s), {args.dtype}, ns per element (median of {len(runs)} run(s))\n")
        print("| n | copy_ | zerofwht.fwht (out of place) | "
              + ("zerofwht.fwht_ (in place) | " if inplace else "")
              + "fht-cpu (in place) | ffht (in place) | fastest peer | zerofwht speed-up |"
              + (" in place |" if inplace else ""))
        print("|---|---|---|---|---|---|---|" + ("---|---|" if inplace else ""))
        for k in sorted(k for tt, k in keys if tt == t):
            m = med[(t, k)]
            best, s = speedup(m)
            ip = f"{m[OURS_INPLACE]:.3f} | " if inplace else ""
            ips = f" {speedup(m, OURS_INPLACE)[1]:.2f}x |" if inplace else ""
            print(f"| 2^{k} | {m[COPY]:.3f} | {m[OURS]:.3f} | {ip}{m['fht_cpu_inplace']:.3f} "
                  f"| {m['ffht_inplace']:.3f} | {PEERS[best]} | {s:.2f}x |{ips}")
    if len(runs) > 1:
        print("\nSpeed-up over the fastest peer, per run: median (min-max)\n")
        ks = sorted({k for _, k in keys})
        print("| threads | " + " | ".join(f"2^{k}" for k in ks) + " |")
        print("|---|" + "---|" * len(ks))
        for t in threads:
            for ours, label in ((OURS, ""), (OURS_INPLACE, ", in place")):
                row = []
                for k in ks:
                    s = [speedup(r[(t, k)], ours)[1] for r in runs if ours in r.get((t, k), {})]
                    row.append(f"{statistics.median(s):.2f} ({min(s):.2f}–{max(s):.2f})" if s else "-")
                if any(c != "-" for c in row):
                    print(f"| {t}{label} | " + " | ".join(row) + " |")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        itemsize = 8 if args.dtype == "float64" else 4
        fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 4.2), sharey=True, squeeze=False)
        series = [(OURS, "zerofwht.fwht (out of place)", "C0", "o-"),
                  (OURS_INPLACE, "zerofwht.fwht_ (in place)", "C3", "D-"),
                  ("fht_cpu_inplace", "fht-cpu (in place)", "C1", "s--"),
                  ("ffht_inplace", "ffht (in place)", "C2", "^--"),
                  (COPY, "copy_ (preallocated)", "0.5", ":")]
        for ax, t in zip(axes[0], threads):
            ks = sorted(k for tt, k in keys if tt == t)
            for name, label, color, style in series:
                pts = [(k, 2 * itemsize / med[(t, k)][name]) for k in ks if name in med[(t, k)]]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=label)
            ax.set_title(f"{args.dtype}, {t} thread(s), 2^22 elements per call")
            ax.set_xlabel("log2 n")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("GB/s (read + write), higher is better")
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
