"""Section ``fwht`` of the benchmark: tables (long and wide) and the GB/s plot."""
from __future__ import annotations

import math
import re
from typing import Optional

from .fwht import _fmt_k


# =================================================================================================
# Section "fwht": tables and plot
# =================================================================================================
def _f_ns(v: float) -> str:
    if v < 10:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    if v < 10000:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _f_gb(v: float) -> str:
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _f_ratio(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v >= 0.095 else f"{v:.2g}"


def _panels(records: list) -> list:
    keys = []
    for r in records:
        key = (r["device"], r["dtype"], r["threads"])
        if key not in keys:
            keys.append(key)
    return keys


def _impl_order(records: list) -> list:
    order = []
    for r in records:
        if r["impl"] not in order:
            order.append(r["impl"])
    return order


def _panel_title(meta: dict, device: str, dtype: str, threads) -> str:
    m = meta.get("machine", {})
    if device.startswith("cuda"):
        where = f"{device} ({m.get('gpu', '?')})"
    else:
        where = f"cpu ({m.get('cpu', '?')}, {m.get('cpus', '?')} cpus)"
    thr = "" if threads is None else f" · {threads} thread{'s' if threads != 1 else ''}"
    isa = f" · isa {meta['cpu_isa']}" if not device.startswith("cuda") and meta.get("cpu_isa") else ""
    tune = meta.get("cpu_tuning") if not device.startswith("cuda") else None
    if tune:
        isa += (f" · L1d {tune['l1d_bytes'] >> 10} KB, L2 {tune['l2_bytes'] >> 10} KB"
                + (f", L3 {tune['l3_bytes'] >> 20} MB" if tune.get("l3_bytes") else ""))
    return f"fwht · {where} · {dtype}{thr}{isa}"


def _check_cell(r: dict) -> str:
    st = r.get("status")
    if st == "ok":
        if r["kind"] == "copy":
            return "exact"
        return f"ok {r['rel_err']:.1e}"
    if st == "wrong":
        return f"WRONG err {r.get('rel_err', float('nan')):.2g}"
    return f"{st}: {r.get('note', '')}"[:60]


def fwht_render(records: list, meta: dict, style: str = "long") -> str:
    recs = [r for r in records if r["section"] == "fwht"]
    out = []
    labels = {r["impl"]: r["label"] for r in recs}
    for device, dtype, threads in _panels(recs):
        panel = [r for r in recs if (r["device"], r["dtype"], r["threads"]) == (device, dtype, threads)]
        sizes = sorted({r["n"] for r in panel})
        elements = panel[0]["elements"] if panel else 0
        out.append("")
        out.append("== " + _panel_title(meta, device, dtype, threads)
                   + f" · {elements} elements per call (batch x N) ==")
        by_n = {n: [r for r in panel if r["n"] == n] for n in sizes}
        if style in ("long", "both"):
            out.append("median over repeats; GB/s counts 2*batch*N*itemsize bytes; x copy = copy time / "
                       "time; IQR in % of the median")
            hdr = (f"{'N':>6} {'batch':>8}  {'implementation':<28} {'ns/el':>8} {'GB/s':>8} "
                   f"{'x copy':>7} {'IQR':>5}  {'min..max ns/el':<17} check")
            out.append(hdr)
            out.append("-" * len(hdr))
            for n in sizes:
                first = True
                for r in by_n[n]:
                    lead = f"{_fmt_k(n):>6} {r['batch']:>8}" if first else " " * 15
                    first = False
                    if r.get("status") == "ok":
                        mm = (f"{_f_ns(r['min_s'] / r['elements'] * 1e9)}.."
                              f"{_f_ns(r['max_s'] / r['elements'] * 1e9)}")
                        out.append(f"{lead}  {r['label']:<28} {_f_ns(r['ns_per_elem']):>8} "
                                   f"{_f_gb(r['gbps']):>8} {_f_ratio(r.get('x_copy')):>7} "
                                   f"{r['iqr_pct']:>4.0f}%  {mm:<17} {_check_cell(r)}")
                    else:
                        out.append(f"{lead}  {r['label']:<28} {'':>8} {'':>8} {'':>7} {'':>5}  "
                                   f"{'':<17} {_check_cell(r)}")
        if style in ("wide", "both"):
            order = [k for k in _impl_order(panel)]
            out.append("cells: ns/el  GB/s  x copy (median over repeats)")
            cw = 20
            out.append(f"{'N':>6} {'batch':>8} |" + "|".join(
                f"{(labels[k] if len(labels[k]) <= cw - 2 else k)[:cw]:^{cw}}" for k in order))
            for n in sizes:
                cells = []
                for k in order:
                    r = next((r for r in by_n[n] if r["impl"] == k), None)
                    if r is None:
                        cells.append(" " * cw)
                    elif r.get("status") != "ok":
                        cells.append(f"{r.get('status', '?'):^{cw}}")
                    else:
                        c = f"{_f_ns(r['ns_per_elem'])} {_f_gb(r['gbps'])} {_f_ratio(r.get('x_copy'))}"
                        cells.append(f"{c:>{cw - 1}} ")
                out.append(f"{_fmt_k(n):>6} {by_n[n][0]['batch']:>8} |" + "|".join(cells))
        # The bar: fastest zerofwht implementation against the fastest public peer, same run.
        has_peer = any(r["kind"] == "peer" and r.get("status") == "ok" for r in panel)
        out.append("")
        out.append("summary: fastest zerofwht vs " + ("fastest public peer" if has_peer
                                                        else "dense x @ H (no peer measured)"))
        ww = max([5] + [len(r["impl"]) for r in panel if r["kind"] == "zerofwht"])
        pw = max([5] + [len(r["impl"]) for r in panel if r["kind"] == "peer"])
        hdr = (f"{'N':>6}  {'copy ns/el':>10}  {'zerofwht ns/el':>14}  {'x copy':>6}  {'which':<{ww}}"
               + (f"  {'peer ns/el':>10}  {'which':<{pw}}  {'speedup':>7}" if has_peer else
                  f"  {'dense ns/el':>11}  {'speedup':>8}"))
        out.append(hdr)
        for n in sizes:
            ok = [r for r in by_n[n] if r.get("status") == "ok"]
            cp = next((r for r in ok if r["kind"] == "copy"), None)
            own = min((r for r in ok if r["kind"] == "zerofwht"), key=lambda r: r["median_s"], default=None)
            other_kind = "peer" if has_peer else "baseline"
            oth = min((r for r in ok if r["kind"] == other_kind), key=lambda r: r["median_s"], default=None)
            line = f"{_fmt_k(n):>6}  {(_f_ns(cp['ns_per_elem']) if cp else '-'):>10}  "
            if own:
                line += (f"{_f_ns(own['ns_per_elem']):>14}  {_f_ratio(own.get('x_copy')):>6}  "
                         f"{own['impl']:<{ww}}")
            else:
                line += f"{'-':>14}  {'-':>6}  {'':<{ww}}"
            if has_peer:
                if oth:
                    line += f"  {_f_ns(oth['ns_per_elem']):>10}  {oth['impl']:<{pw}}"
                else:
                    line += f"  {'-':>10}  {'':<{pw}}"
                line += f"  {(oth['median_s'] / own['median_s']):>6.2f}x" if (own and oth) else f"  {'-':>7}"
            else:
                if oth:
                    line += f"  {_f_ns(oth['ns_per_elem']):>11}  {(oth['median_s'] / own['median_s']):>7.1f}x" \
                        if own else f"  {_f_ns(oth['ns_per_elem']):>11}  {'-':>8}"
                else:
                    line += f"  {'-':>11}  {'-':>8}"
            out.append(line)
        bad = [r for r in panel if r.get("status") in ("wrong", "error")]
        if bad:
            out.append("problems: " + "; ".join(f"N={_fmt_k(r['n'])} {r['impl']}: {_check_cell(r)}"
                                                 for r in bad))
    return "\n".join(out)


STYLE = {  # implementation key (before any "[isa]" / ":form") -> matplotlib style
    "copy": dict(color="black", linestyle="--", linewidth=2.2, marker=None),
    "cpp": dict(color="tab:blue", linestyle="-", linewidth=2.2, marker="o"),
    "cuda": dict(color="tab:red", linestyle="-", linewidth=2.2, marker="o"),
    "triton": dict(color="tab:purple", linestyle="-", linewidth=2.0, marker="D"),
    "torch": dict(color="tab:orange", linestyle="-", linewidth=1.6, marker="s"),
    "dense": dict(color="tab:gray", linestyle=":", linewidth=1.6, marker="x"),
    "ffht": dict(color="tab:green", linestyle="-.", linewidth=1.8, marker="^"),
    "fht_cpu": dict(color="tab:brown", linestyle="-.", linewidth=1.8, marker="v"),
    "fast_hadamard_transform": dict(color="tab:green", linestyle="-.", linewidth=1.8, marker="^"),
}
ISA_COLORS = {"avx512": "tab:blue", "avx2": "tab:cyan", "generic": "tab:purple", "auto": "tab:blue"}
FORM_LINESTYLES = {"out": (0, (1, 1)), "inplace": (0, (6, 1.5, 1, 1.5, 1, 1.5))}
_EXTRA_COLORS = ["tab:olive", "tab:pink", "navy", "darkgoldenrod", "teal", "tab:cyan"]


def _styles(order: list) -> dict:
    """Colour = implementation (ISA variant), line style = call form; dashed is only the copy."""
    styles, extra = {}, iter(_EXTRA_COLORS * 4)
    for key in order:
        m = re.fullmatch(r"([^\[:]+)(?:\[([^\]]+)\])?(?::(\w+))?", key)
        base, isa, form = m.groups() if m else (key, None, None)
        st = dict(STYLE.get(base) or dict(color=next(extra), linestyle="-", linewidth=1.6, marker="o"))
        if isa:
            st["color"] = ISA_COLORS.get(isa) or next(extra)
        if form:
            st["linestyle"] = FORM_LINESTYLES.get(form, (0, (3, 1)))
        styles[key] = st
    return styles


def fwht_plot(records: list, meta: dict, path: str) -> Optional[str]:
    yscale = meta.get("plot_yscale", "log")
    recs = [r for r in records if r["section"] == "fwht" and r.get("status") == "ok"]
    if not recs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    dtypes = list(dict.fromkeys(r["dtype"] for r in recs))
    threads = list(dict.fromkeys(r["threads"] for r in recs))
    panels = [(d, t) for d in dtypes for t in threads
              if any(r["dtype"] == d and r["threads"] == t for r in recs)]
    # One row per dtype and one column per thread count; with a single thread count, wrap the
    # dtypes over two columns.
    ncol = len(threads) if len(threads) > 1 else min(2, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    order = _impl_order(recs)
    labels = {r["impl"]: r["label"] for r in recs}
    styles = _styles(order)
    width = max(9.5 if len(panels) == 1 else 11.0, 6.0 * ncol)
    leg_cols = max(1, min(len(order), int(width // 3.1)))
    leg_rows = math.ceil(len(order) / leg_cols)
    top_in, bottom_in = 0.1, 0.25 + 0.24 * leg_rows  # tight_layout makes room for the suptitle
    height = 4.0 * nrow + top_in + bottom_in
    fig, axes = plt.subplots(nrow, ncol, figsize=(width, height), squeeze=False, sharey=True)
    handles = {}
    for idx, ax in enumerate(axes.flat):
        if idx >= len(panels):
            ax.set_visible(False)
            continue
        dt, th = panels[idx]
        panel = [r for r in recs if r["dtype"] == dt and r["threads"] == th]
        for key in order:
            pts = sorted((r["k"], r["gbps"]) for r in panel if r["impl"] == key)
            if not pts:
                continue
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=labels[key],
                              markersize=4.5, zorder=3 if key == "copy" else 2, **styles[key])
            handles.setdefault(key, line)
        thr = "GPU" if th is None else f"{th} thread{'s' if th != 1 else ''}"
        ax.set_title(f"{dt} · {thr}", fontsize=11)
        if yscale == "log":
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        else:
            ax.set_ylim(0, 1.06 * max(r["gbps"] for r in recs))
        ax.tick_params(labelleft=True)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", axis="y", alpha=0.12)
        ks = sorted({r["k"] for r in panel})
        step = 1 if len(ks) <= 9 else 2
        ax.set_xticks(ks[::step])
        ax.set_xticklabels([f"$2^{{{k}}}$" for k in ks[::step]])
        if len(ks) == 1:
            ax.set_xlim(ks[0] - 1, ks[0] + 1)
        ax.set_xlabel("transform length N", fontsize=9.5)
        if idx % ncol == 0:
            ax.set_ylabel(f"GB/s (read + write{', log scale' if yscale == 'log' else ''})", fontsize=9.5)
    m = meta.get("machine", {})
    cfg = meta.get("config", {})
    dev = cfg.get("device", "")
    where = (f"{dev} {m.get('gpu', '')}" if dev.startswith("cuda")
             else f"{m.get('cpu', '?')}, {m.get('cpus', '?')} cpus, isa {meta.get('cpu_isa')}")
    fig.suptitle(f"zerofwht {meta.get('zerofwht_version', '')} · fwht bandwidth · {where} · "
                 f"torch {meta.get('torch_version', '')} · {meta.get('date', '')[:10]}\n"
                 f"batch x N = {cfg.get('total')} elements per call · median of repeats · higher is "
                 f"better · dashed black = copy (out.copy_(x)), the bandwidth reference"
                 + ("\nWARNING: other processes were busy during the measurements ("
                    + ", ".join(f"t={r.get('threads')}: {r['other_load_cores']:.2f} cores"
                                for r in meta.get("runs", []) if r.get("other_load_cores") is not None)
                    + ") - timings disturbed" if meta.get("warnings") else ""),
                 fontsize=10.5)
    keys = [k for k in order if k in handles]
    fig.legend([handles[k] for k in keys], [labels[k] for k in keys], loc="lower center",
               ncol=leg_cols, fontsize=9.5, frameon=False, bbox_to_anchor=(0.5, 0.05 / height))
    fig.tight_layout(rect=(0, bottom_in / height, 1, 1 - top_in / height))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
