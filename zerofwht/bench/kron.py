"""Section ``kron`` of the benchmark: the exact K*2^k transform (``fwht(x, n=K * 2**k)``) against
what users do without it, per n = K * 2^k, fp32, about ``total`` input elements per call:

    fused    zerofwht.fwht(x, n=n): the fused op (C++ on CPU; CUDA, else Triton, on a GPU)
    padded   our power-of-two transform of the next power of two, truncated to n outputs
             (not orthogonal; what the library did before)
    twopass  our power-of-two transform of the K sub-rows, then torch.matmul with H_K (the recipe
             of rotation-based quantization code)
    copy     x.clone(): the memory-bound floor

Times come from the project's harness (``timing.time_alternating``: the methods called in turn,
medians). ``scripts/bench_kron.py`` runs the same methods with more sizes, one thread's CPU time
and a dense n x n product. Details and measured numbers: docs/kron.md."""
from __future__ import annotations

from typing import Optional

from .common import log

SIZES = (768, 3072, 11008, 14336)  # 12*64, 12*256, 172*64, 28*512 (docs/kron.md)
QUICK_SIZES = (768, 3072)
METHODS = ("fused", "padded", "twopass", "copy")


def kron_methods(n: int, rows: int, device="cpu", seed: int = 0) -> dict:
    """``{method: zero-argument callable}`` for one n (METHODS, above), on a ``(rows, n)`` fp32
    standard-normal input on ``device``. Raises if the fused op and the two-pass recipe disagree."""
    import torch
    import zerofwht
    from zerofwht import bases

    k, m = bases.split(n)
    g = torch.Generator().manual_seed(seed + n)
    x = torch.randn(rows, n, generator=g).to(device)
    base = bases.hadamard_base(k, torch.float32, device)
    p = 1 << (n - 1).bit_length()
    methods = {
        "fused": lambda: zerofwht.fwht(x, n=n),
        "padded": lambda: zerofwht.fwht(x, n=p, out_features=n),
        "twopass": lambda: torch.matmul(base, zerofwht.fwht(x.view(rows, k, m)).view(rows, k, m)).view(rows, n),
        "copy": lambda: x.clone(),
    }
    torch.testing.assert_close(methods["fused"](), methods["twopass"](), rtol=1e-4, atol=1e-3)
    return methods


def kron_worker(cfg: dict, threads: Optional[int]) -> dict:
    from zerofwht import bases
    from .timing import time_alternating

    records = []
    for n in (QUICK_SIZES if cfg["quick"] else SIZES):
        rows = max(1, cfg["total"] // n)
        k, m = bases.split(n)
        fns = kron_methods(n, rows, cfg["device"], cfg["seed"])
        med, reps = time_alternating(fns, cfg["device"], budget_s=4 * cfg["budget"],
                                     min_reps=cfg["min_reps"], max_reps=cfg["max_reps"])
        for method in METHODS:
            records.append(dict(section="kron", device=cfg["device"], threads=threads, n=n, K=k, M=m,
                                method=method, dtype="float32", rows=rows, reps=reps,
                                ns_per_element=med[method] / (rows * n) * 1e9))
        log(f"kron n={n} ({k}*{m}): " + ", ".join(f"{r['method']} {r['ns_per_element']:.3f}"
                                                  for r in records[-len(METHODS):]) + " ns/element")
    return {"records": records}


def _rows(records: list) -> list:
    """One row per (device, threads, n): {"device", "threads", "n", "K", "M", "ns": {method: ns}}."""
    rows = {}
    for r in records:
        if r.get("section") != "kron":
            continue
        key = (r["device"], r["threads"], r["n"])
        row = rows.setdefault(key, dict(device=r["device"], threads=r["threads"], n=r["n"], K=r["K"],
                                        M=r["M"], ns={}))
        row["ns"][r["method"]] = r["ns_per_element"]
    return list(rows.values())


def kron_render(records: list, meta: dict, style: str = "long") -> str:
    lines = ["", "== kron: exact K*2^k transform, fp32, ns per input element; ratio = method / fused "
                 "(> 1: fused faster)"]
    lines.append(f"{'device':>7} {'thr':>4} {'n':>6} {'K*M':>8} {'fused':>7} {'padded':>7} {'twopass':>8} "
                 f"{'copy':>6} | {'pad/f':>6} {'2pass/f':>7} {'copy/f':>6}")
    for row in _rows(records):
        t = row["ns"]
        f = t["fused"]
        thr = "-" if row["threads"] is None else row["threads"]
        km = f"{row['K']}*{row['M']}"
        lines.append(f"{row['device']:>7} {thr:>4} {row['n']:>6} {km:>8} "
                     f"{f:7.3f} {t['padded']:7.3f} {t['twopass']:8.3f} {t['copy']:6.3f} | "
                     f"{t['padded'] / f:6.2f} {t['twopass'] / f:7.2f} {t['copy'] / f:6.2f}")
    return "\n".join(lines)


def kron_plot(records: list, meta: dict, path: str) -> Optional[str]:
    """Bars per n, one panel per (device, thread count): each method's time over the fused op's."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no kron plot")
        return None
    rows = _rows(records)
    panels = []
    for row in rows:
        if (row["device"], row["threads"]) not in panels:
            panels.append((row["device"], row["threads"]))
    if not panels:
        return None
    width = max(7.0, 0.9 * len({r["n"] for r in rows}) + 2)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.8 * len(panels)), squeeze=False)
    others = ("padded", "twopass", "copy")
    for ax, (device, threads) in zip(axes[:, 0], panels):
        mine = [r for r in rows if (r["device"], r["threads"]) == (device, threads)]
        for i, name in enumerate(others):
            ratios = [r["ns"][name] / r["ns"]["fused"] for r in mine]
            ax.bar([j + (i - 1) * 0.27 for j in range(len(mine))], ratios, width=0.27, label=name)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(mine)), [f"{r['n']}\n{r['K']}·{r['M']}" for r in mine])
        ax.set_ylabel("method time / fused time\n(> 1: fused faster)")
        where = device if threads is None else f"{device}, {threads} thread(s)"
        ax.set_title(f"zerofwht.fwht(x, n=K·2^k), fp32, {where}")
        ax.legend()
    fig.suptitle(f"exact K·2^k transform vs padding and the two-pass recipe, {str(meta.get('date', ''))[:16]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
