"""Summary writer of scripts/gpu_check.sh: reads the work folder (steps.jsonl, env.json, pytest
junit files, bench.json, step logs) and writes into OUTDIR

    summary.md     device, versions, date, steps (status, seconds, time box), test counts,
                   failures and skip reasons, sanitizer verdicts, ncu counters, speed tables
    results.json   the same as data
    gpu_check.log  every step's output (each cut to its last 300 KB)
    bench.png      the transform's time / copy time per n, one panel per dtype (if matplotlib)

Everything it reads may be missing or cut short (a step that failed or was killed): it says so
in the summary instead of failing.
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import xml.etree.ElementTree as ET

LOG_TAIL = 300_000


def load_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return default


def read_steps(work):
    steps = []
    try:
        with open(os.path.join(work, "steps.jsonl")) as f:
            for line in f:
                if line.strip():
                    steps.append(json.loads(line))
    except FileNotFoundError:
        pass
    return steps


def parse_junit(path):
    """Counts, failed test ids and skip reasons of one pytest junit file (None if absent/broken)."""
    try:
        root = ET.parse(path).getroot()
    except Exception:  # noqa: BLE001
        return None
    counts = collections.Counter()
    failed, reasons = [], collections.Counter()
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = [c.tag for c in case]
        if "failure" in kinds or "error" in kinds:
            counts["failed" if "failure" in kinds else "errors"] += 1
            el = case.find("failure") if "failure" in kinds else case.find("error")
            msg = (el.get("message") or "").splitlines()[0][:200] if el is not None else ""
            failed.append(f"{name}: {msg}")
        elif "skipped" in kinds:
            counts["skipped"] += 1
            el = case.find("skipped")
            reasons[(el.get("message") or "").strip()[:200]] += 1
        else:
            counts["passed"] += 1
    return {"passed": counts["passed"], "failed": counts["failed"], "errors": counts["errors"],
            "skipped": counts["skipped"], "failed_tests": failed, "skip_reasons": dict(reasons)}


def parse_pytest_log(text):
    """Fallback when pytest was killed before writing its junit file: the last summary line."""
    m = re.findall(r"=+ (.*?(?:passed|failed|skipped|error).*?) in [\d.]+s", text)
    out = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failed_tests": [], "skip_reasons": {},
           "from_log": True}
    if m:
        for num, what in re.findall(r"(\d+) (passed|failed|skipped|errors?)", m[-1]):
            out["errors" if what.startswith("error") else what] = int(num)
    out["failed_tests"] = re.findall(r"^FAILED (\S+)", text, re.M)[:50]
    return out


def read_log(work, name):
    try:
        with open(os.path.join(work, f"{name}.log"), errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def fmt_ratio(rec):
    if "ms" not in rec:
        return "—"
    return f"{rec['ratio_to_baseline']:.3g} ({rec['ms']:.3g} ms)"


def speed_tables(bench):
    recs = bench.get("records", [])
    lines = []
    fw = [r for r in recs if r.get("kind") == "fwht"]
    if fw:
        backends = list(dict.fromkeys(r["backend"] for r in fw))
        lines += ["### Transform: time / device-to-device copy of the same bytes (lower is better; "
                  "1.0 = copy speed)", "", "| dtype | n | rows | copy ms | " + " | ".join(backends) + " |",
                  "|---|---|---|---|" + "---|" * len(backends)]
        cells = collections.OrderedDict()
        for r in fw:
            cells.setdefault((r["dtype"], r["n"], r["rows"], r["baseline_ms"]), {})[r["backend"]] = r
        for (dt, n, rows, base), by in cells.items():
            lines.append(f"| {dt} | 2^{n.bit_length() - 1} | {rows} | {base:.3g} | "
                         + " | ".join(fmt_ratio(by[b]) if b in by else "" for b in backends) + " |")
        skipped = collections.Counter((r["backend"], r["skipped"]) for r in fw if "skipped" in r)
        for (b, why), k in skipped.items():
            lines.append(f"\n- {b}: {k} case(s) not run: {why}")
        lines.append("")
    ini = [r for r in recs if r.get("kind") == "init"]
    if ini:
        lines += ["### Init fills: time / `fill_` of the same tensor", "",
                  "| fill | dtype | shape | fill_ ms | backend | ratio (ms) |", "|---|---|---|---|---|---|"]
        for r in ini:
            lines.append(f"| {r['what']} | {r['dtype']} | {tuple(r['shape'])} | {r['baseline_ms']:.3g} | "
                         f"{r['backend']} | {fmt_ratio(r) if 'ms' in r else 'not run: ' + r.get('skipped', '')} |")
        lines.append("")
    lin = [r for r in recs if r.get("kind") == "linear"]
    if lin:
        lines += ["### HadamardLinear / nn.Linear (forward, same input)", "",
                  "| shape | dtype | nn.Linear ms | HadamardLinear ratio (ms) |", "|---|---|---|---|"]
        for r in lin:
            lines.append(f"| {r['what']} | {r['dtype']} | {r['baseline_ms']:.3g} | {fmt_ratio(r)} |")
        lines.append("")
    return lines


NCU_COLS = {"smsp__sass_inst_executed_op_shared_st.sum": "st instr",
            "l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum": "st wavefronts",
            "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum": "st conflicts",
            "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum": "ld conflicts"}


def ncu_table(lines):
    """ncu --csv rows (one per kernel launch and metric) -> a markdown table per launch. A
    conflict-free 16-byte store by a full warp takes 4 wavefronts (128 bytes each): wavefronts /
    instructions near 4 with few conflicts means vector stores; many more instructions and
    conflicts mean the chunk was split into scalar stores."""
    import csv
    rows = list(csv.reader(lines))
    if not rows:
        return []
    head = rows[0] if "Metric Name" in rows[0] else None
    if head is None:
        return []
    ix = {k: head.index(k) for k in ("ID", "Kernel Name", "Metric Name", "Metric Value") if k in head}
    if len(ix) < 4:
        return []
    launches = collections.OrderedDict()
    for r in rows[1:]:
        if len(r) < len(head):
            continue
        key = (r[ix["ID"]], re.sub(r"\(.*", "", r[ix["Kernel Name"]])[:60])
        launches.setdefault(key, {})[NCU_COLS.get(r[ix["Metric Name"]], r[ix["Metric Name"]])] = r[ix["Metric Value"]]
    cols = list(NCU_COLS.values())
    out = ["| launch | kernel | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for (lid, name), m in launches.items():
        out.append(f"| {lid} | {name} | " + " | ".join(m.get(c, "") for c in cols) + " |")
    return out


def plot(bench, path):
    fw = [r for r in bench.get("records", []) if r.get("kind") == "fwht" and "ms" in r]
    if not fw:
        return "no transform timings to plot"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:  # noqa: BLE001
        return f"matplotlib not available ({type(exc).__name__})"
    dtypes = list(dict.fromkeys(r["dtype"] for r in fw))
    fig, axes = plt.subplots(1, len(dtypes), figsize=(4 * len(dtypes), 3.2), squeeze=False, sharey=True)
    for ax, dt in zip(axes[0], dtypes):
        for be in dict.fromkeys(r["backend"] for r in fw):
            pts = sorted((r["n"].bit_length() - 1, r["ratio_to_baseline"]) for r in fw
                         if r["dtype"] == dt and r["backend"] == be)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=be)
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_title(dt)
        ax.set_xlabel("log2 n")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("time / copy time")
    axes[0][-1].legend(fontsize=8)
    meta = bench.get("meta", {})
    fig.suptitle(f"zerofwht transform vs copy: {meta.get('device', '?')}, torch {meta.get('torch', '?')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--dry-run", default="0")
    ap.add_argument("--elapsed", type=float, default=0.0)
    ap.add_argument("--budget", type=float, default=0.0)
    a = ap.parse_args()
    work, out = a.work, a.out
    env = load_json(os.path.join(work, "env.json"), {})
    steps = read_steps(work)
    bench = load_json(os.path.join(work, "bench.json"), {})
    mode = "dry run" if a.dry_run == "1" else "quick" if a.quick == "1" else "full"

    tests = {}
    for s in steps:
        if s["name"].startswith("tests_") and s["status"] != "skipped":
            t = parse_junit(os.path.join(work, f"junit_{s['name']}.xml"))
            tests[s["name"]] = t if t is not None else parse_pytest_log(read_log(work, s["name"]))
    san = {}
    for s in steps:
        if s["name"].startswith("sanitize_") and s["status"] != "skipped":
            log = read_log(work, s["name"])
            verdict = re.findall(r"ERROR SUMMARY: .*", log)
            san[s["name"]] = {"status": s["status"], "summary": verdict[-1] if verdict else "no ERROR SUMMARY line",
                              "driver": (re.findall(r"^sanitize\[.*", log, re.M) or [""])[-1]}
    ncu_csv = [ln for ln in read_log(work, "ncu").splitlines() if ln.startswith('"')]
    ncu_lines = [ln for ln in ncu_csv if "shared" in ln]

    totals = collections.Counter()
    for t in tests.values():
        for k in ("passed", "failed", "errors", "skipped"):
            totals[k] += t[k]
    device = env.get("device", "unknown device")
    md = [f"# zerofwht GPU check: {device}", "",
          f"- date (UTC): {env.get('date_utc', '?')}; mode: {mode}; total {a.elapsed:.0f} s of a {a.budget:.0f} s budget",
          f"- torch {env.get('torch', '?')} (CUDA {env.get('torch_cuda')}), triton {env.get('triton', '?')}, "
          f"python {env.get('python', '?')}, {env.get('cpus', '?')} CPUs; nvcc: {' '.join(env.get('nvcc_version', [])) or env.get('nvcc', '?')}",
          f"- GPU: {env.get('nvidia_smi') or env.get('gpu_reason') or device}; arch {env.get('arch', '-')}",
          f"- tests: **{totals['passed']} passed, {totals['failed']} failed, {totals['errors']} errors, "
          f"{totals['skipped']} skipped**", "",
          "## Steps", "", "| step | status | seconds | time box (s) | note |", "|---|---|---|---|---|"]
    for s in steps:
        note = s["reason"]
        t = tests.get(s["name"])
        if t and t["passed"] + t["failed"] + t["errors"] == 0:
            note = (note + "; " if note else "") + f"all {t['skipped']} tests skipped (reasons below)"
        md.append(f"| {s['name']} | {s['status']} | {s['seconds']:.1f} | {s['limit_s']:.0f} | {note} |")
    md.append("")
    if tests:
        md += ["## Tests", "", "| step | passed | failed | errors | skipped |", "|---|---|---|---|---|"]
        for name, t in tests.items():
            src = " (counts from the log: pytest was stopped before its report)" if t.get("from_log") else ""
            md.append(f"| {name}{src} | {t['passed']} | {t['failed']} | {t['errors']} | {t['skipped']} |")
        md.append("")
        for name, t in tests.items():
            for f in t["failed_tests"][:40]:
                md.append(f"- FAILED ({name}) {f}")
            for why, k in t["skip_reasons"].items():
                md.append(f"- skipped ({name}, {k}): {why}")
        md.append("")
    if san:
        md += ["## compute-sanitizer", ""] + [f"- {k}: {v['status']}; {v['summary']}; {v['driver']}" for k, v in san.items()] + [""]
    if ncu_lines:
        md += ["## ncu: row kernel shared-memory stores (instructions, wavefronts, bank conflicts)", ""]
        table = ncu_table(ncu_csv)
        md += (table + [""]) if table else (["```"] + ncu_lines[:40] + ["```", ""])
    md += ["## Speed", ""]
    meta = bench.get("meta", {})
    if bench.get("records"):
        md += [f"Device {meta.get('device')}, {meta.get('timer')}; {meta.get('note', '')}", ""] + speed_tables(bench)
        why = plot(bench, os.path.join(out, "bench.png"))
        md += [f"Plot: {'bench.png' if why is None else 'none (' + why + ')'}", ""]
    else:
        bs = [s for s in steps if s["name"] == "bench"]
        md += [f"No timings: bench step {bs[-1]['status'] + ' ' + bs[-1]['reason'] if bs else 'did not run'}.", ""]

    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    results = {"mode": mode, "elapsed_s": a.elapsed, "budget_s": a.budget, "env": env, "steps": steps,
               "tests": tests, "totals": dict(totals), "sanitizer": san, "ncu": ncu_lines, "bench": bench}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out, "gpu_check.log"), "w", errors="replace") as f:
        for s in steps:
            text = read_log(work, s["name"])
            f.write(f"==== {s['name']}: {s['status']} {s['seconds']:.1f}s {s['reason']}\n")
            f.write(text[-LOG_TAIL:] + ("\n" if text and not text.endswith("\n") else ""))
    print(f"gpu_check_summary: {os.path.join(out, 'summary.md')} ({mode}; {totals['passed']} passed, "
          f"{totals['failed']} failed, {totals['skipped']} skipped)")


if __name__ == "__main__":
    main()
