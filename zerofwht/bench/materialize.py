"""Materialization benchmark of zerofwht.init (the ``materialization`` section of
``python -m zerofwht.bench``; also ``python -m zerofwht.bench.materialize`` on its own).

For each weight shape, dtype and scheme it times the fused initializer writing a preallocated
weight on the device, and reports

* ``gbps``: bytes written (``numel * element_size``) per second;
* ``ratio_to_fill``: that bandwidth over the bandwidth of ``w.fill_(1.0)`` on the same tensor,
  measured in the same run (the bar: >= 0.8 on CPU, >= 0.9 on a GPU, docs/design.md);
* ``speedup_vs_dense``: the time of the ZerO authors' approach (dense ``scipy.linalg.hadamard(P)``
  on the host, products with identity blocks ``eye(out, P) @ H / 2^(m/2) @ eye(P, in)``, then a
  copy into the weight on its device) over ours, where that approach fits in memory and time
  (``dense_note`` says why it was skipped otherwise). ``partial_identity`` compares with
  ``torch.nn.init.eye_`` on the host + copy; the IDI rules have no published dense recipe here.

Both the initializer and ``fill_`` overwrite the same already-allocated (and touched) tensor, so
the ratio compares write bandwidth, not the allocator. Times are medians of ``repeats`` runs after
``warmup`` runs; CUDA timings synchronize the device.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from typing import Any, Optional

import torch

from .. import init, reference
from .timing import median_call_s, sync as _sync

SCHEMES = {
    "hadamard": lambda w, backend: init.hadamard_(w, backend=backend),
    "zero": lambda w, backend: init.zero_init_(w, backend=backend),
    "partial_identity": lambda w, backend: init.partial_identity_(w, backend=backend),
    "idi": lambda w, backend: init.idi_(w, backend=backend),
    "idiz": lambda w, backend: init.idiz_(w, backend=backend),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
DEFAULTS = dict(shapes=["8192x8192", "32768x8192"], dtypes=["fp32", "bf16"], schemes=list(SCHEMES),
                device=None, repeats=5, warmup=1, dense=True, dense_max_gib=None,
                dense_max_tflop=4.0, backend=None, json=None)


def _options(args_or_kwargs) -> dict:
    opts = dict(DEFAULTS)
    if args_or_kwargs is None:
        return opts
    src = vars(args_or_kwargs) if isinstance(args_or_kwargs, argparse.Namespace) else dict(args_or_kwargs)
    for k, v in src.items():
        if k in opts and v is not None:
            opts[k] = v
    return opts


def _shape(s) -> tuple:
    if isinstance(s, str):
        return tuple(int(x) for x in s.lower().split("x"))
    return tuple(int(x) for x in s)


def _available_ram() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def dense_authors(scheme: str, w: torch.Tensor) -> None:
    """The ZerO authors' dense construction (their ``ZerO_Init_on_matrix``), copied into ``w``."""
    import scipy.linalg

    out_f, in_f = w.shape
    if scheme == "partial_identity" or (scheme == "zero" and out_f <= in_f):
        m = torch.nn.init.eye_(torch.empty(out_f, in_f))
    else:
        m_log = math.ceil(math.log2(max(out_f, in_f) if scheme == "hadamard" else out_f))
        p = 2 ** m_log
        h = torch.tensor(scipy.linalg.hadamard(p)).float() / (2 ** (m_log / 2))
        m = torch.nn.init.eye_(torch.empty(out_f, p)) @ h @ torch.nn.init.eye_(torch.empty(p, in_f))
    w.copy_(m)


def _dense_cost(scheme: str, shape) -> tuple:
    """(peak host bytes, flop) of dense_authors for a (out, in) weight; (0, 0) when cheap."""
    out_f, in_f = shape
    if scheme == "partial_identity" or (scheme == "zero" and out_f <= in_f):
        return 4 * out_f * in_f, 0
    if scheme not in ("hadamard", "zero"):
        return None, None
    p = reference.next_power_of_two(max(out_f, in_f))
    peak = 8 * p * p + 4 * p * p + 4 * out_f * p + 4 * p * in_f + 4 * out_f * p + 4 * out_f * in_f
    flop = 2 * out_f * p * p + 2 * out_f * p * in_f
    return peak, flop


def run_materialization(args_or_kwargs=None) -> list[dict]:
    """Runs the benchmark; returns one record per (shape, dtype, scheme). ``args_or_kwargs``: an
    argparse.Namespace or a dict with any of the keys of ``DEFAULTS`` (shapes as "8192x8192")."""
    o = _options(args_or_kwargs)
    device = torch.device(o["device"] or ("cuda" if torch.cuda.is_available() else "cpu"))
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"{platform.processor() or platform.machine()} ({_cpu_model()})")
    ram = _available_ram()
    max_bytes = (o["dense_max_gib"] * 2 ** 30 if o["dense_max_gib"] is not None
                 else (0.6 * ram if ram else 8 * 2 ** 30))
    records = []
    for shape_s in o["shapes"]:
        shape = _shape(shape_s)
        for dname in o["dtypes"]:
            dtype = DTYPES[dname] if isinstance(dname, str) else dname
            w = torch.empty(shape, dtype=dtype, device=device)
            nbytes = w.numel() * w.element_size()
            fill_s = median_call_s(lambda: w.fill_(1.0), o["repeats"], o["warmup"], device)
            for scheme in o["schemes"]:
                fn = SCHEMES[scheme]
                backend = init._backends.select_init(w, o["backend"]).name
                ours = median_call_s(lambda: fn(w, o["backend"]), o["repeats"], o["warmup"], device)
                rec: dict[str, Any] = dict(
                    section="materialization", date=date, device=str(device), device_name=device_name,
                    threads=torch.get_num_threads(), torch=torch.__version__, shape=list(shape),
                    dtype=str(dtype).replace("torch.", ""), scheme=scheme, backend=backend,
                    bytes=nbytes, seconds=ours, gbps=nbytes / ours / 1e9, fill_seconds=fill_s,
                    fill_gbps=nbytes / fill_s / 1e9, ratio_to_fill=fill_s / ours,
                    dense_seconds=None, speedup_vs_dense=None, dense_note=None)
                if o["dense"] and len(shape) == 2:
                    peak, flop = _dense_cost(scheme, shape)
                    if peak is None:
                        rec["dense_note"] = "no dense recipe for this scheme"
                    elif peak > max_bytes:
                        rec["dense_note"] = (f"skipped: needs ~{peak / 2 ** 30:.1f} GiB of host memory "
                                             f"(limit {max_bytes / 2 ** 30:.1f} GiB)")
                    elif flop > o["dense_max_tflop"] * 1e12:
                        rec["dense_note"] = (f"skipped: {flop / 1e12:.1f} TFLOP of identity-block "
                                             f"products (limit {o['dense_max_tflop']} TFLOP)")
                    else:
                        t0 = time.perf_counter()
                        dense_authors(scheme, w)
                        _sync(device)
                        rec["dense_seconds"] = time.perf_counter() - t0
                        rec["speedup_vs_dense"] = rec["dense_seconds"] / ours
                records.append(rec)
            del w
    if o["json"]:
        with open(o["json"], "w") as f:
            json.dump(records, f, indent=1)
    return records


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def format_table(records: list[dict], title: bool = True) -> str:
    """The table, one line per record in run order; ``title``: a first line naming the device,
    thread count, torch and date (the benchmark CLI prints its own heading instead)."""
    if not records:
        return "(no results)"
    r0 = records[0]
    lines = [f"materialization on {r0['device']} [{r0['device_name']}], {r0['threads']} threads, "
             f"torch {r0['torch']}, {r0['date']}"] if title else []
    lines += [f"{'shape':>12} {'dtype':>8} {'scheme':>17} {'backend':>7} {'ms':>9} {'GB/s':>7} "
             f"{'fill GB/s':>9} {'x fill':>7} {'dense s':>8} {'x dense':>8}"]
    for r in records:
        dense = f"{r['dense_seconds']:8.2f} {r['speedup_vs_dense']:8.0f}" if r["dense_seconds"] else \
            f"{'-':>8} {'-':>8}  {r['dense_note'] or ''}"
        lines.append(f"{'x'.join(map(str, r['shape'])):>12} {r['dtype']:>8} {r['scheme']:>17} "
                     f"{r['backend']:>7} {r['seconds'] * 1e3:9.2f} {r['gbps']:7.1f} {r['fill_gbps']:9.1f} "
                     f"{r['ratio_to_fill']:7.2f} {dense}")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--shapes", nargs="+", help="weight shapes OUTxIN (default 8192x8192 32768x8192)")
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), help="default fp32 bf16")
    ap.add_argument("--schemes", nargs="+", choices=sorted(SCHEMES), help="default all")
    ap.add_argument("--device", help="default cuda if available, else cpu")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--no-dense", dest="dense", action="store_false", default=None,
                    help="skip the authors' dense host approach")
    ap.add_argument("--dense-max-gib", type=float, help="host memory limit of the dense approach "
                    "(default 60%% of available RAM)")
    ap.add_argument("--dense-max-tflop", type=float, help="skip the dense approach above this (default 4)")
    ap.add_argument("--backend", help="init backend (default auto)")
    ap.add_argument("--json", help="write the records to this file")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m zerofwht.bench.materialize", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    records = run_materialization(args)
    print(format_table(records))
    return 0


# ---- the section of python -m zerofwht.bench ----
def materialization_worker(cfg: dict, threads: Optional[int]) -> dict:
    """Times zerofwht.init on (8192, 8192) and (32768, 8192) weights (this module) with
    the largest thread count only (one fill is memory-bound; the other counts add nothing)."""
    import torch
    counts = [t for t in cfg["threads"] if t is not None]
    if threads is not None:
        torch.set_num_threads(threads)
        if counts and threads != max(counts):
            return {"records": []}
    opts = dict(device=cfg["device"])
    if cfg.get("quick"):
        opts.update(shapes=["2048x2048"], schemes=["hadamard", "zero", "idi"], repeats=3,
                    dense_max_tflop=0.1)
    records = run_materialization(opts)
    for r in records:
        r["threads"] = threads
    return {"records": records}


def materialization_render(records: list, meta: dict, style: str = "long") -> str:
    recs = [r for r in records if r.get("section") == "materialization"]
    if not recs:
        return ""
    head = (f"\n## materialization: zerofwht.init vs torch.empty(...).fill_(1.0) on {recs[0]['device_name']}, "
            f"{recs[0]['threads']} thread(s), {meta.get('date', '')}\n"
            "ratio = fill_ time / our time (>= 1: faster than fill_); dense = the ZerO authors' recipe "
            "(scipy.linalg.hadamard on the host, identity-block products, copy to the device)\n")
    return head + format_table(recs, title=False)


def plot_panels(recs: list) -> list:
    """``[(title, records)]``: one panel per (shape, dtype, threads) in the table's order (the
    order of the run); the title names the thread count (CPU) or the device."""
    panels: dict = {}
    for r in recs:
        panels.setdefault(("x".join(map(str, r["shape"])), r["dtype"], r.get("threads")), []).append(r)
    out = []
    for (shape, dtype, threads), rs in panels.items():
        where = (f"{threads} thread{'s' if threads != 1 else ''}" if threads is not None
                 else rs[0]["device"])
        out.append((f"{shape} {dtype}, {where}", rs))
    return out


def materialization_plot(records: list, meta: dict, path: str) -> Optional[str]:
    recs = [r for r in records if r.get("section") == "materialization"]
    if not recs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = plot_panels(recs)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.0), squeeze=False)
    top = max(max(r["gbps"], r["fill_gbps"]) for r in recs)
    for ax, (title, rs) in zip(axes[0], groups):
        bars = ax.bar([r["scheme"] for r in rs], [r["gbps"] for r in rs], color="tab:blue")
        ax.bar_label(bars, labels=[f"x{r['ratio_to_fill']:.2f}" for r in rs], fontsize=7)
        ax.axhline(rs[0]["fill_gbps"], color="black", ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("GB/s (bytes written)")
        ax.set_ylim(0, top * 1.18)  # room for the ratio labels above the bars
        ax.tick_params(axis="x", rotation=45)
    # One legend for the figure, below the panels: inside an axes it hid bars.
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    fig.legend([Patch(color="tab:blue"), Line2D([], [], color="black", ls="--")],
               ["zerofwht.init (label: x fill_ = fill_ time / our time)",
                "torch.empty(...).fill_(1.0), same tensor"],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"weight materialization, {recs[0]['device_name']}, {meta.get('date', '')[:10]}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

if __name__ == "__main__":
    sys.exit(main())
