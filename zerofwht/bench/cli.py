"""``python -m zerofwht.bench`` -- the zerofwht benchmark CLI.

Section ``fwht`` (the default) sweeps the transform length N = 2^4 ... 2^20 and, for every
(device, dtype, thread count, N), times on the same input tensor of ``batch x N`` elements
(``batch = total // N``, default ``total = 2^22`` on CPU, ``2^26`` on CUDA):

* every zerofwht backend that can run on the device, out of place: ``zerofwht.fwht(x, backend=b)``
  (optionally also the ``out=`` and in-place forms, ``--forms``);
* ``copy``: ``out.copy_(x)`` into a preallocated tensor -- the bandwidth reference;
* ``dense``: ``x @ H`` with the dense Hadamard matrix, the naive baseline (N <= ``--dense-max``);
* public peers when they import: ``ffht`` (ffht-unofficial, in place on numpy), ``fht_cpu``
  (in place on numpy), ``fast_hadamard_transform`` (CUDA).

Each implementation's output is first checked once against an fp64 reference (on a subset of the
rows); a wrong result is reported as WRONG and never timed. Then: warm-up, repeats until a time
budget (``--budget``) and a minimum count (``--min-reps``) are reached; the median is reported, with
the spread (interquartile range; min and max in the JSON). Reported per row: ns per element, GB/s
with ``bytes = 2 * batch * N * itemsize`` (one read and one write of the tensor), and the ratio to
the copy measured in the same run (``x copy`` = copy time / implementation time = GB/s ratio).

CPU thread counts (``--threads 1,2``) each run in their own subprocess with ``OMP_NUM_THREADS`` set
before anything is imported and ``torch.set_num_threads``, and the peers get the same count, so
that the OpenMP runtimes loaded in one process (torch's, fht_cpu's, the system one of ffht) agree.
On CUDA, timings use CUDA events around a loop of calls (each repeat covers >= 1 ms of GPU work).

Writes ``<out>/bench_<date>_<device>.json`` (every record, the configuration and machine info) and
one PNG per section (GB/s versus N per implementation, one panel per dtype and thread count, copy
dashed) and prints where. Progress goes to stderr, tables to stdout.

Examples::

    python -m zerofwht.bench                          # full sweep, default device, 1 and all threads
    python -m zerofwht.bench --quick                  # short smoke run
    python -m zerofwht.bench --sizes 1024,2^16 --dtypes float32,bfloat16 --threads 1
    python -m zerofwht.bench --isa avx512,avx2,generic --threads 1 --kmax 14
    python -m zerofwht.bench --device cuda --dtypes float16,bfloat16,float32

Sections: the CLI is organized in sections (``--section``); each one has a worker that produces
records, a table renderer and a plot (see ``SECTIONS`` at the end of this file). New sections
(e.g. weight materialization) register themselves there.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .common import (DEFAULT_TOTAL, DTYPE_ALIASES, DTYPE_NAMES, OWN_ORDER, QUICK_KS, SCHEMA,
                     THREAD_ENV, log)
from .fwht import _fmt_k, fwht_worker
from .impls import PEERS, peer_impls
from .machine import OtherLoad, cpu_isa, git_info, machine_info
from .materialize import materialization_plot, materialization_render, materialization_worker
from .report import fwht_plot, fwht_render
# =================================================================================================
# Sections, machine info, the parent process
# =================================================================================================
@dataclass
class Section:
    name: str
    help: str
    worker: Callable[[dict, Optional[int]], dict]   # (config, threads) -> {"records": [...], ...}
    render: Callable[[list, dict, str], str]        # (records, meta, table style) -> text
    plot: Callable[[list, dict, str], Optional[str]]  # (records, meta, png path) -> path or None



SECTIONS = {
    "fwht": Section("fwht", "out-of-place transform vs copy, dense x @ H and public peers",
                    fwht_worker, fwht_render, fwht_plot),
    "materialization": Section("materialization", "zerofwht.init fills vs fill_ and the dense host recipe",
                               materialization_worker, materialization_render, materialization_plot),
}



def _parse_sizes(text: str) -> list:
    sizes = []
    for tok in text.replace(" ", "").split(","):
        if not tok:
            continue
        m = re.fullmatch(r"2(?:\^|\*\*)(\d+)", tok)
        try:
            n = 1 << int(m.group(1)) if m else int(tok)
        except ValueError:
            raise SystemExit(f"--sizes: cannot read {tok!r} (use e.g. 1024 or 2^10)") from None
        if n < 1 or n & (n - 1):
            raise SystemExit(f"--sizes: {tok!r} is not a power of two")
        sizes.append(n)
    return sorted(set(sizes))


def _parse_list(text: Optional[str]) -> list:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m zerofwht.bench",
                                description="Benchmark zerofwht's Walsh-Hadamard transform against a "
                                "plain copy of the same tensor, the dense x @ H baseline and public peers.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--section", default="all",
                   help=f"comma list of sections to run, or 'all' (have: {', '.join(SECTIONS)}; default all)")
    g = p.add_argument_group("what to measure")
    g.add_argument("--sizes", default=None, help="comma list of transform lengths N, e.g. 256,2^12 "
                   "(overrides --kmin/--kmax)")
    g.add_argument("--kmin", type=int, default=None, help="smallest N = 2^kmin (default 4)")
    g.add_argument("--kmax", type=int, default=None, help="largest N = 2^kmax (default 20)")
    g.add_argument("--dtypes", default="float32", help="comma list of float32, float16, bfloat16, "
                   "float64 (default float32)")
    g.add_argument("--threads", default=None, help="CPU: comma list of thread counts, each run in "
                   "its own process (default: 1 and the number of CPUs)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available, "
                   "else cpu)")
    g.add_argument("--backends", default=None, help="comma list of zerofwht backends (default: "
                   "every available backend that runs on the device)")
    g.add_argument("--forms", default="oop", help="call forms of the zerofwht backends: oop "
                   "(fwht(x), the default), out (fwht(x, out=buf)), inplace (fwht_(buf))")
    g.add_argument("--peers", default="auto", help="comma list of public peers (" + ", ".join(PEERS)
                   + "), 'auto' (every one that imports; default) or 'none'")
    g.add_argument("--dense-max", type=int, default=4096,
                   help="largest N for the dense x @ H baseline (default 4096; 0: off)")
    g.add_argument("--total", type=int, default=None, help="elements per call, batch = total // N "
                   "(default 2^22 on CPU, 2^26 on CUDA)")
    g.add_argument("--isa", default="auto", help="CPU kernel variant(s): auto, avx512, avx2, "
                   "generic; a comma list measures each as its own column (default auto)")
    g = p.add_argument_group("how to measure")
    g.add_argument("--quick", action="store_true", help="short smoke sweep (N = 2^4, 2^8, 2^12, "
                   "2^16; total 2^18; short budgets); explicit options still win")
    g.add_argument("--budget", type=float, default=None, help="seconds of timed calls per "
                   "measurement after --min-reps (default 0.25)")
    g.add_argument("--min-reps", type=int, default=None, help="least repeats (default 5)")
    g.add_argument("--max-reps", type=int, default=2000, help="most repeats (default 2000)")
    g.add_argument("--max-time", type=float, default=None, help="stop after 3 repeats once this "
                   "many seconds are spent (slow implementations; default 1.5)")
    g.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    g.add_argument("--cooldown", type=float, default=None, help="seconds to sleep before each "
                   "measurement so other OpenMP runtimes' threads park (default 0.02)")
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--inproc", action="store_true", help="run every thread count in this process "
                   "(default: one subprocess per thread count)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="directory for the JSON and PNG files "
                   "(default ./bench_out)")
    g.add_argument("--from-json", default=None, metavar="JSON", help="do not measure: print the "
                   "tables of an earlier run's JSON and redraw its plots (next to it, or in --out)")
    g.add_argument("--table", choices=("long", "wide", "both"), default="long",
                   help="long: one line per measurement (default); wide: one line per N")
    g.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    g.add_argument("--plot-yscale", choices=("log", "linear"), default="log",
                   help="GB/s axis of the plot (default log: baselines are 100x slower)")
    g.add_argument("--keep-times", action="store_true", help="store every repeat's time in the JSON")
    g.add_argument("--list", action="store_true", help="list what would be measured and exit")
    g.add_argument("--verbose", action="store_true", help="tracebacks for errors")
    # internal: a worker subprocess
    p.add_argument("--_worker", nargs=3, metavar=("SECTION", "CONFIG", "RESULT"), help=argparse.SUPPRESS)
    return p


def resolve_config(args) -> dict:
    import torch
    import zerofwht
    from zerofwht import _backends

    sections = list(SECTIONS) if args.section == "all" else _parse_list(args.section)
    for s in sections:
        if s not in SECTIONS:
            raise SystemExit(f"--section: unknown section {s!r}; have {', '.join(SECTIONS)} or 'all'")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise SystemExit(f"--device: {e}") from None
    if dev.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be cpu or cuda[:N], got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available (torch {torch.__version__}, "
                         f"built with CUDA {torch.version.cuda})")
    if args.sizes:
        sizes = _parse_sizes(args.sizes)
    else:
        kmin = 4 if args.kmin is None else args.kmin
        kmax = 20 if args.kmax is None else args.kmax
        if not 0 <= kmin <= kmax <= 30:
            raise SystemExit(f"--kmin/--kmax: need 0 <= kmin <= kmax <= 30, got {kmin}, {kmax}")
        sizes = [1 << k for k in range(kmin, kmax + 1)]
        if args.quick and args.kmin is None and args.kmax is None:
            sizes = [1 << k for k in QUICK_KS]
    dtypes = []
    for d in _parse_list(args.dtypes):
        d = DTYPE_ALIASES.get(d.lower(), d.lower())
        if d not in DTYPE_NAMES:
            raise SystemExit(f"--dtypes: unknown dtype {d!r}; use {', '.join(DTYPE_NAMES)}")
        dtypes.append(d)
    if dev.type == "cpu":
        threads = ([int(t) for t in _parse_list(args.threads)] if args.threads
                   else sorted({1, os.cpu_count() or 1}))
        if any(t < 1 for t in threads):
            raise SystemExit(f"--threads: thread counts must be >= 1, got {args.threads}")
    else:
        if args.threads:
            log(f"note: --threads is ignored on {device}")
        threads = [None]

    table = {b["name"]: b for b in zerofwht.backends()}
    runs_here = [k for k, b in table.items() if "any" in b["devices"] or dev.type in b["devices"]]
    if args.backends in (None, "", "auto", "all"):
        backends = [k for k in OWN_ORDER if k in runs_here and table[k]["available"]]
        skipped = {k: table[k]["reason"] for k in runs_here if not table[k]["available"]}
    else:
        backends, skipped = [], {}
        for name in _parse_list(args.backends):
            key = getattr(_backends, "ALIASES", {}).get(name.lower(), name.lower())
            if key not in table:
                raise SystemExit(f"--backends: unknown backend {name!r}; have {', '.join(table)}")
            if key not in runs_here:
                raise SystemExit(f"--backends: {key} does not run on {dev.type} "
                                 f"(it runs on {', '.join(table[key]['devices'])})")
            if not table[key]["available"]:
                raise SystemExit(f"--backends: {key} is not available: {table[key]['reason']}")
            if key not in backends:
                backends.append(key)
    forms = _parse_list(args.forms) or ["oop"]
    for f in forms:
        if f not in ("oop", "out", "inplace"):
            raise SystemExit(f"--forms: unknown form {f!r}; use oop, out, inplace")
    if args.peers in ("auto", "all"):
        peers = list(PEERS)
    elif args.peers in ("none", ""):
        peers = []
    else:
        peers = _parse_list(args.peers)
        for name in peers:
            if name not in PEERS:
                raise SystemExit(f"--peers: unknown peer {name!r}; have {', '.join(PEERS)}")
    isas = _parse_list(args.isa) or ["auto"]
    if "cpp" in backends and zerofwht._C is not None:
        for isa in isas:
            try:
                zerofwht._C.set_cpu_isa(isa)
            except Exception as e:  # noqa: BLE001
                raise SystemExit(f"--isa: {e}") from None
        zerofwht._C.set_cpu_isa("auto")
    quick = args.quick
    total = args.total or ((1 << 18) if quick else DEFAULT_TOTAL[dev.type])
    pick = (lambda v, q, d: v if v is not None else (q if quick else d))
    return dict(sections=sections, device=device, device_type=dev.type, sizes=sizes, dtypes=dtypes,
                threads=threads, backends=backends, backends_skipped=skipped, forms=forms,
                peers=peers, dense_max=args.dense_max, total=total, isa=isas, quick=quick,
                budget=pick(args.budget, 0.02, 0.25), min_reps=pick(args.min_reps, 3, 5),
                max_reps=args.max_reps, max_time=pick(args.max_time, 0.3, 1.5),
                warmup=args.warmup, cooldown=pick(args.cooldown, 0.005, 0.02), seed=args.seed,
                cuda_warmup_s=0.025, cuda_rep_s=1e-3, cuda_max_inner=1000,
                keep_times=args.keep_times, verbose=args.verbose)


def _worker_env(threads: Optional[int]) -> dict:
    env = dict(os.environ)
    if threads is not None:
        for var in THREAD_ENV:
            env[var] = str(threads)
    # numpy's BLAS is not timed; its spinning threads would steal cores from the timed code.
    env["OPENBLAS_NUM_THREADS"] = "1"
    # The worker must import the same zerofwht as this process.
    pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_section_worker(section: str, cfg: dict, threads: Optional[int], inproc: bool) -> dict:
    if inproc:
        return SECTIONS[section].worker(cfg, threads)
    with tempfile.TemporaryDirectory(prefix="zerofwht-bench-") as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        res_path = os.path.join(tmp, "result.json")
        with open(cfg_path, "w") as f:
            json.dump(dict(cfg, worker_threads=threads), f)
        cmd = [sys.executable, "-m", "zerofwht.bench", "--_worker", section, cfg_path, res_path]
        proc = subprocess.run(cmd, env=_worker_env(threads))
        if proc.returncode != 0 or not os.path.exists(res_path):
            raise RuntimeError(f"the {section} worker for threads={threads} failed with exit code "
                               f"{proc.returncode} (see its messages above)")
        with open(res_path) as f:
            return json.load(f)


def worker_main(section: str, cfg_path: str, res_path: str) -> int:
    with open(cfg_path) as f:
        cfg = json.load(f)
    result = SECTIONS[section].worker(cfg, cfg.get("worker_threads"))
    with open(res_path, "w") as f:
        json.dump(result, f)
    return 0


def list_plan(cfg: dict) -> str:
    import zerofwht
    lines = [f"device {cfg['device']}; sections {', '.join(cfg['sections'])}; dtypes "
             f"{', '.join(cfg['dtypes'])}; threads {cfg['threads']}; N = "
             + ", ".join(_fmt_k(n) for n in cfg["sizes"]) + f"; {cfg['total']} elements per call"]
    lines.append("zerofwht backends: " + (", ".join(cfg["backends"]) or "(none)"))
    for k, why in cfg["backends_skipped"].items():
        lines.append(f"  not available: {k}: {why}")
    _, info = peer_impls(cfg["device_type"], cfg["peers"], 1)
    for k, v in info.items():
        lines.append(f"peer {k}: " + (f"yes (version {v.get('version')})" if v["available"]
                                      else f"no: {v['reason']}"))
    lines.append(f"baselines: copy (always), dense x @ H for N <= {cfg['dense_max']}")
    lines.append(f"cpu isa: {zerofwht.cpu_isa() if zerofwht._C is not None else 'n/a'}")
    return "\n".join(lines)


def replot(args) -> int:
    with open(args.from_json) as f:
        meta = json.load(f)
    records = meta.pop("records")
    meta["plot_yscale"] = args.plot_yscale
    sections = [s for s in meta.get("config", {}).get("sections", ["fwht"]) if s in SECTIONS]
    for section in sections:
        print(SECTIONS[section].render(records, meta, args.table))
    for w in meta.get("warnings", []):
        print(f"warning (at measurement time): {w}")
    base = os.path.splitext(args.from_json)[0]
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        base = os.path.join(args.out, os.path.basename(base))
    if not args.no_plot:
        for section in sections:
            png = SECTIONS[section].plot(records, meta, f"{base}_{section}.png")
            if png:
                print(f"wrote {png}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args._worker:
        return worker_main(*args._worker)
    if args.from_json:
        return replot(args)
    cfg = resolve_config(args)
    if args.list:
        print(list_plan(cfg))
        return 0
    import torch
    import zerofwht

    t0 = time.perf_counter()
    started = datetime.datetime.now().astimezone()
    meta = dict(schema=SCHEMA, date=started.isoformat(timespec="seconds"),
                command=" ".join(["python -m zerofwht.bench"] + (sys.argv[1:] if argv is None else list(argv))),
                zerofwht_version=zerofwht.__version__, zerofwht_path=os.path.dirname(zerofwht.__file__),
                torch_version=torch.__version__, cpu_isa=cpu_isa(),
                supported_cpu_isas=(zerofwht._C.supported_cpu_isas() if zerofwht._C is not None
                                    and hasattr(zerofwht._C, "supported_cpu_isas") else None),
                # the cache sizes the CPU kernel's plans were cut to (see csrc/fwht_cpu.h, CpuTuning)
                cpu_tuning=(zerofwht._C.cpu_tuning() if zerofwht._C is not None
                            and hasattr(zerofwht._C, "cpu_tuning") else None),
                backends=zerofwht.backends(), config=cfg, machine=machine_info(cfg["device"]),
                **git_info())
    try:
        import numpy
        meta["numpy_version"] = numpy.__version__
    except ImportError:
        pass
    log(f"zerofwht.bench: {list_plan(cfg)}".replace("\n", "\n  "))

    records, runs, failures, warnings = [], [], [], []
    for section in cfg["sections"]:
        for threads in cfg["threads"]:
            log(f"--- section {section}, device {cfg['device']}"
                + (f", {threads} thread(s)" if threads is not None else "")
                + (" (in process)" if args.inproc else " (subprocess)"))
            try:
                with OtherLoad() as load:
                    res = run_section_worker(section, cfg, threads, args.inproc)
            except Exception as e:  # noqa: BLE001
                failures.append(str(e))
                log(f"ERROR: {e}")
                continue
            records.extend(res.pop("records"))
            res["other_load_cores"] = None if load.cores is None else round(load.cores, 2)
            runs.append(dict(section=section, **res))
            if load.cores is not None and load.cores > 0.15:
                warnings.append(f"section {section}, threads={threads}: other processes kept "
                                f"{load.cores:.2f} of {os.cpu_count()} cores busy during the "
                                f"measurements; timings (multi-threaded ones most) may be disturbed")
    meta["runs"] = runs
    if runs and runs[0].get("cpu_isa"):
        meta["cpu_isa"] = runs[0]["cpu_isa"]  # what the workers ran with (--isa)
    meta["thread_counts"] = cfg["threads"]
    meta["peers"] = runs[0]["peers"] if runs else {}
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    meta["warnings"] = warnings
    meta["plot_yscale"] = args.plot_yscale

    for section in cfg["sections"]:
        print(SECTIONS[section].render(records, meta, args.table))
    out_dir = args.out or "bench_out"
    os.makedirs(out_dir, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    dev_tag = cfg["device"].replace(":", "")
    base = os.path.join(out_dir, f"bench_{stamp}_{dev_tag}")
    with open(base + ".json", "w") as f:
        json.dump(dict(meta, records=records), f, indent=1, default=str)
    written = [base + ".json"]
    if not args.no_plot:
        for section in cfg["sections"]:
            try:
                png = SECTIONS[section].plot(records, meta, f"{base}_{section}.png")
            except Exception as e:  # noqa: BLE001  (a plot problem must not lose the measurements)
                log(f"plot of section {section} failed: {type(e).__name__}: {e}")
                png = None
            if png:
                written.append(png)
    print()
    for w in warnings:
        print(f"warning: {w}")
    print(f"wrote {written[0]} ({len(records)} records)")
    for p in written[1:]:
        print(f"wrote {p}")
    log(f"zerofwht.bench: finished in {meta['wall_s']:.0f} s")
    bad_own = [r for r in records if r.get("kind") in ("zerofwht", "copy")
               and r.get("status") in ("wrong", "error")]
    if bad_own:
        print(f"FAILED: {len(bad_own)} zerofwht measurement(s) were wrong or raised (see 'problems')")
    return 1 if (failures or bad_own or not records) else 0


if __name__ == "__main__":
    sys.exit(main())

