"""Command line of ``python -m zerofwht.bench``: the parser and the resolved configuration (device,
sizes, dtypes, thread counts, backends, peers, budgets) that every worker receives as JSON."""
from __future__ import annotations

import argparse
import os
import re
from typing import Optional

from .common import DEFAULT_TOTAL, DTYPE_ALIASES, DTYPE_NAMES, OWN_ORDER, QUICK_KS, log
from .impls import PEERS
from .sections import SECTIONS


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


def build_parser(doc: str = "") -> argparse.ArgumentParser:
    """The parser; ``doc``: the CLI's docstring, whose examples become the help's epilog."""
    p = argparse.ArgumentParser(prog="python -m zerofwht.bench",
                                description="Benchmark zerofwht's Walsh-Hadamard transform against a "
                                "plain copy of the same tensor, the dense x @ H baseline and public peers.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc.split("\n\n", 1)[-1])
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
