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
records, a table renderer and a plot (``zerofwht.bench.sections``). New sections
(e.g. weight materialization) register themselves there.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Optional

from .common import SCHEMA, THREAD_ENV, log
from .config import build_parser as _build_parser, resolve_config
from .fwht import _fmt_k
from .impls import peer_impls
from .machine import OtherLoad, cpu_isa, git_info, machine_info
from .sections import SECTIONS


def build_parser():
    return _build_parser(__doc__)


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
                # the cache sizes the CPU kernel's plans were cut to (see csrc/cpu/fwht.h, CpuTuning)
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
    meta["peers"] = next((r["peers"] for r in runs if "peers" in r), {})  # the fwht section's
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

