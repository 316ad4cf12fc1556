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
import gc
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

SCHEMA = "zerofwht-bench/1"
DTYPE_NAMES = ("float32", "float16", "bfloat16", "float64")
DTYPE_ALIASES = {"fp32": "float32", "f32": "float32", "float": "float32", "single": "float32",
                 "fp16": "float16", "f16": "float16", "half": "float16",
                 "bf16": "bfloat16", "fp64": "float64", "f64": "float64", "double": "float64"}
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
# Relative Frobenius error allowed against the fp64 reference. Half types store their output in
# their own type (rounding ~2^-11 / 2^-8 per element); a broken kernel is off by O(1).
TOLERANCE = {"float64": 1e-12, "float32": 2e-5, "float16": 3e-3, "bfloat16": 2e-2}
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_TOTAL = {"cpu": 1 << 22, "cuda": 1 << 26}
QUICK_KS = (4, 8, 12, 16)
OWN_ORDER = ("cuda", "triton", "cpp", "torch")


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


class Skip(Exception):
    """This implementation does not apply to this input (dtype, size, device)."""


# =================================================================================================
# Implementations: each builds a Case for one input tensor.
# =================================================================================================
@dataclass
class Case:
    """``run()`` is the timed call; ``prep()`` (untimed) runs before each call (in-place forms get a
    fresh copy of the input); ``result(ret)`` turns ``run()``'s return value into the output
    tensor (any device) that is checked against the reference."""
    run: Callable[[], Any]
    result: Callable[[Any], Any]
    prep: Optional[Callable[[], None]] = None


@dataclass
class Impl:
    key: str            # short, unique: "cpp", "torch", "copy", "dense", "ffht", ...
    label: str          # for tables and legends
    kind: str           # "zerofwht" | "copy" | "baseline" | "peer"
    mode: str           # "oop" (allocates the output) | "out" | "inplace" | "copy"
    build: Callable[[Any, int], Case] = field(repr=False)  # (x, n) -> Case, may raise Skip
    dtypes: Optional[tuple] = None   # None: every dtype
    max_n: Optional[int] = None
    setup: Optional[Callable[[], None]] = field(default=None, repr=False)  # before measuring
    version: Optional[str] = None
    note: str = ""

    def describe(self) -> dict:
        return dict(key=self.key, label=self.label, kind=self.kind, mode=self.mode,
                    dtypes=list(self.dtypes) if self.dtypes else "all", max_n=self.max_n,
                    version=self.version, note=self.note)


def _dist_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return None


def _numpy_buffer(x):
    """An uninitialized numpy array shaped like CPU tensor ``x``, 64-byte aligned (torch's CPU
    allocator), for the numpy peers (FFHT wants 32-byte alignment with AVX)."""
    import torch
    return torch.empty_like(x, memory_format=torch.contiguous_format).numpy()


def copy_impl() -> Impl:
    def build(x, n):
        import torch
        out = torch.empty_like(x)
        return Case(run=lambda: out.copy_(x), result=lambda r: out)
    return Impl("copy", "copy: out.copy_(x)", "copy", "copy", build,
                note="copy into a preallocated tensor: the bandwidth reference")


def dense_impl(dense_max: int) -> Impl:
    def build(x, n):
        import zerofwht
        h = zerofwht.reference.hadamard_matrix(n, dtype=x.dtype, device=x.device)
        return Case(run=lambda: x @ h, result=lambda r: r)
    return Impl("dense", "dense x @ H (naive)", "baseline", "oop", build, max_n=dense_max,
                note="dense matmul with the n x n Hadamard matrix in x's dtype, O(n^2) per row")


def own_impls(device_type: str, backends: list, forms: list, isas: list) -> list:
    """zerofwht backends (and call forms; ISA variants of the C++ CPU kernel)."""
    import torch
    import zerofwht
    table = {b["name"]: b for b in zerofwht.backends()}
    impls = []
    for name in backends:
        info = table[name]
        variants = [(None, "")]
        if name == "cpp" and len(isas) > 1:
            variants = [(isa, f"[{isa}]") for isa in isas]
        dts = tuple(info["dtypes"])
        max_n = info["max_n"]
        for isa, suffix in variants:
            setup = None
            if isa is not None:
                setup = (lambda isa=isa: zerofwht._C.set_cpu_isa(isa))
            for form in forms:
                key = name + suffix + ("" if form == "oop" else f":{form}")
                if form == "oop":
                    def build(x, n, name=name):
                        return Case(run=lambda: zerofwht.fwht(x, backend=name), result=lambda r: r)
                    label = f"zerofwht {name}{suffix}"
                elif form == "out":
                    def build(x, n, name=name):
                        out = torch.empty_like(x)
                        return Case(run=lambda: zerofwht.fwht(x, out=out, backend=name),
                                    result=lambda r: out)
                    label = f"zerofwht {name}{suffix} out="
                else:  # inplace
                    def build(x, n, name=name):
                        buf = torch.empty_like(x)
                        return Case(run=lambda: zerofwht.fwht_(buf, backend=name),
                                    prep=lambda: buf.copy_(x), result=lambda r: buf)
                    label = f"zerofwht {name}{suffix} in place"
                impls.append(Impl(key, label, "zerofwht", form, build, dtypes=dts, max_n=max_n,
                                  setup=setup, version=zerofwht.__version__,
                                  note=info["description"]))
    return impls


# ---- public peers -------------------------------------------------------------------------------
def _peer_ffht(device_type: str, threads: int):
    if device_type != "cpu":
        raise Skip("CPU only")
    import ffht  # noqa: F401  (ImportError -> not installed)
    import numpy as np

    inplace = getattr(ffht, "fht_", None)
    if inplace is not None:  # ffht-unofficial: fht_(buf, nthreads) in place, fht() out of place
        def call(buf):
            return inplace(buf, threads)
        how = "ffht.fht_(buf, nthreads) in place"
    else:  # the original FALCONN FFHT bindings: fht(buf) in place on a 1-D array
        def call(buf):
            for row in buf:
                ffht.fht(row)
        how = "ffht.fht(row) in place, per row"

    def build(x, n):
        xn = x.numpy()
        buf = _numpy_buffer(x)
        return Case(run=lambda: call(buf), prep=lambda: np.copyto(buf, xn), result=lambda r: buf)
    ver = _dist_version("ffht-unofficial") or _dist_version("FFHT") or getattr(ffht, "__version__", None)
    return Impl("ffht", "ffht (in place)", "peer", "inplace", build,
                dtypes=("float32", "float64"), version=ver, note=how)


def _peer_fht_cpu(device_type: str, threads: int):
    if device_type != "cpu":
        raise Skip("CPU only")
    import fht_cpu
    import numpy as np

    def build(x, n):
        xn = x.numpy()
        buf = _numpy_buffer(x)
        return Case(run=lambda: fht_cpu.fht(buf, axis=-1, inplace=True, num_threads=threads),
                    prep=lambda: np.copyto(buf, xn), result=lambda r: buf)
    return Impl("fht_cpu", "fht_cpu (in place)", "peer", "inplace", build,
                dtypes=("float32", "float64"),
                version=_dist_version("fht_cpu") or _dist_version("fht-cpu"),
                note="fht_cpu.fht(buf, inplace=True, num_threads=threads)")


def _peer_fast_hadamard_transform(device_type: str, threads: int):
    if device_type != "cuda":
        raise Skip("CUDA only")
    from fast_hadamard_transform import hadamard_transform

    def build(x, n):
        return Case(run=lambda: hadamard_transform(x, 1.0), result=lambda r: r)
    return Impl("fast_hadamard_transform", "fast_hadamard_transform", "peer", "oop", build,
                dtypes=("float32", "float16", "bfloat16"), max_n=1 << 15,
                version=_dist_version("fast_hadamard_transform")
                or _dist_version("fast-hadamard-transform"),
                note="Dao-AILab fast_hadamard_transform.hadamard_transform(x, scale=1.0)")


PEERS = {"ffht": _peer_ffht, "fht_cpu": _peer_fht_cpu,
         "fast_hadamard_transform": _peer_fast_hadamard_transform}


def peer_impls(device_type: str, names: list, threads: int) -> tuple:
    """(impls, info): the peers that import and apply to the device, and why the others do not."""
    impls, info = [], {}
    for name in names:
        try:
            impl = PEERS[name](device_type, threads)
        except Skip as e:
            info[name] = dict(available=False, reason=str(e))
        except Exception as e:  # noqa: BLE001  (ImportError, or a broken install)
            info[name] = dict(available=False, reason=f"not importable: {type(e).__name__}: {e}")
        else:
            impls.append(impl)
            info[name] = dict(available=True, version=impl.version, note=impl.note)
    return impls, info


# =================================================================================================
# Timing
# =================================================================================================
def _stop(count: int, elapsed: float, cfg: dict) -> bool:
    if count >= cfg["max_reps"]:
        return True
    if count >= cfg["min_reps"] and elapsed >= cfg["budget"]:
        return True
    return count >= 3 and elapsed >= cfg["max_time"]  # slow implementations: 3 repeats suffice


def time_cpu(case: Case, cfg: dict, first_s: float) -> tuple:
    """Per-call seconds of ``case.run()`` (wall clock), ``case.prep()`` untimed before each."""
    time.sleep(cfg["cooldown"])  # let other OpenMP runtimes' spinning threads park
    if first_s < 0.1:  # the checked call already warmed a slow implementation up
        for _ in range(cfg["warmup"]):
            if case.prep:
                case.prep()
            case.run()
    times = []
    gc.disable()
    try:
        t_start = time.perf_counter()
        while True:
            if case.prep:
                case.prep()
            t0 = time.perf_counter()
            ret = case.run()
            t1 = time.perf_counter()
            ret = None  # noqa: F841  (free the output outside the timed region)
            times.append(t1 - t0)
            if _stop(len(times), time.perf_counter() - t_start, cfg):
                break
    finally:
        gc.enable()
    return times, 1


def time_cuda(case: Case, cfg: dict, first_s: float) -> tuple:
    """Per-call seconds from CUDA events. Without ``prep``, each repeat times a loop of ``inner``
    back-to-back calls covering >= ``cuda_rep_s`` of GPU time (launch overhead amortized, as in a
    model); with ``prep`` (in-place forms), one call per repeat."""
    import torch
    t_end = time.perf_counter() + cfg["cuda_warmup_s"]
    done = 0
    while done < max(1, cfg["warmup"]) or (time.perf_counter() < t_end and done < 200):
        if case.prep:
            case.prep()
        case.run()
        done += 1
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    if case.prep:
        case.prep()
    start.record()
    case.run()
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end) * 1e-3, 1e-7)
    inner = 1 if case.prep else int(min(cfg["cuda_max_inner"], max(1, math.ceil(cfg["cuda_rep_s"] / one))))
    times = []
    gc.disable()
    try:
        t_start = time.perf_counter()
        while True:
            if case.prep:
                case.prep()
            start.record()
            for _ in range(inner):
                case.run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3 / inner)
            if _stop(len(times), time.perf_counter() - t_start, cfg):
                break
    finally:
        gc.enable()
    return times, inner


def _stats(times: list, elements: int, nbytes: int) -> dict:
    st = summarize(times)
    st.update(ns_per_elem=st["median_s"] / elements * 1e9, gbps=nbytes / st["median_s"] / 1e9,
              iqr_pct=100.0 * (st["q75_s"] - st["q25_s"]) / st["median_s"])
    return st


def summarize(times: list) -> dict:
    s = sorted(times)
    m = len(s)

    def q(p):  # linear interpolation between order statistics
        pos = p * (m - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, m - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)
    return dict(median_s=q(0.5), q25_s=q(0.25), q75_s=q(0.75), min_s=s[0], max_s=s[-1], reps=m)


# =================================================================================================
# Section "fwht": the worker (runs with one fixed thread count)
# =================================================================================================
def _torch_dtype(name: str):
    import torch
    return getattr(torch, name)


def _self_check_reference() -> None:
    """The reference butterfly must equal the dense Sylvester matrix (and scipy's, if present)."""
    import torch
    from zerofwht import reference
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 16, 1024):
        z = torch.randn(3, n, dtype=torch.float64, generator=g)
        h = reference.hadamard_matrix(n, dtype=torch.float64)
        if not torch.allclose(reference.fwht_butterfly(z, n, n, 1.0), z @ h, rtol=1e-12, atol=1e-12):
            raise RuntimeError(f"zerofwht.reference.fwht_butterfly disagrees with hadamard_matrix at n={n}")
        try:
            import scipy.linalg
        except ImportError:
            continue
        if not torch.equal(h, torch.from_numpy(scipy.linalg.hadamard(n).astype("float64"))):
            raise RuntimeError(f"zerofwht.reference.hadamard_matrix({n}) != scipy.linalg.hadamard({n})")


def _fmt_k(n: int) -> str:
    return f"2^{n.bit_length() - 1}"


def make_input(n: int, total: int, dtype: str, device, seed: int = 1234):
    """The benchmark input: ``(max(1, total // n), n)`` standard-normal values (never all zeros) in
    ``dtype`` on ``device``, reproducible from ``seed`` and ``n``."""
    import torch
    device = torch.device(device)
    batch = max(1, total // n)
    gen_dtype = torch.float64 if dtype == "float64" else torch.float32
    g = torch.Generator(device=device).manual_seed(seed + n)
    return torch.randn(batch, n, generator=g, dtype=gen_dtype, device=device).to(_torch_dtype(dtype))


class Checker:
    """Checks a transform of ``x`` (shape ``(batch, n)``) against an fp64 reference computed once,
    on up to 2^16 elements' worth of rows spread over the batch."""

    def __init__(self, x):
        import torch
        from zerofwht import reference
        batch, n = x.shape
        self.shape = (batch, n)
        nrows = min(batch, max(1, (1 << 16) // n))
        self.rows = torch.unique(torch.linspace(0, batch - 1, nrows, dtype=torch.float64).round().long())
        self.x_rows = x[self.rows.to(x.device)].to(device="cpu", dtype=torch.float64)
        self.ref = reference.fwht_butterfly(self.x_rows, n, n, 1.0)
        self.ref_norm = float(self.ref.norm()) or 1.0

    def error(self, y, copy: bool = False) -> float:
        """Relative Frobenius error of ``y`` (tensor or numpy array) against ``H x`` (or against
        ``x`` itself when ``copy``). NaN when ``y`` holds NaN."""
        import torch
        y = torch.as_tensor(y)
        if tuple(y.shape) != self.shape:
            raise RuntimeError(f"output shape {tuple(y.shape)}, expected {self.shape}")
        y_rows = y[self.rows.to(y.device)].to(device="cpu", dtype=torch.float64)
        want = self.x_rows if copy else self.ref
        return float((y_rows - want).norm()) / self.ref_norm


def fwht_worker(cfg: dict, threads: Optional[int]) -> dict:
    import torch
    import zerofwht

    device = torch.device(cfg["device"])
    dev_type = device.type
    if dev_type == "cuda":
        torch.cuda.set_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    isas = cfg["isa"]
    if zerofwht._C is not None and "cpp" in cfg["backends"]:
        zerofwht._C.set_cpu_isa(isas[0])
    _self_check_reference()

    impls = [copy_impl()] + own_impls(dev_type, cfg["backends"], cfg["forms"], isas)
    peers, peer_info = peer_impls(dev_type, cfg["peers"], threads or 1)
    impls += peers
    if cfg["dense_max"] > 0:
        impls.append(dense_impl(cfg["dense_max"]))
    timer = time_cuda if dev_type == "cuda" else time_cpu
    tag = f"[fwht {cfg['device']} t={threads if threads is not None else '-'}"

    plan = []
    for dname in cfg["dtypes"]:
        for n in cfg["sizes"]:
            todo = [i for i in impls if (i.dtypes is None or dname in i.dtypes)
                    and (i.max_n is None or n <= i.max_n)]
            plan.append((dname, n, todo))
    n_meas = sum(len(t) for _, _, t in plan)
    log(f"{tag}] {n_meas} measurements: {', '.join(i.key for i in impls)}; "
        + (f"peers not available: {', '.join(k for k, v in peer_info.items() if not v['available'])}"
           if any(not v["available"] for v in peer_info.values()) else "all requested peers present"))

    records = []
    count = 0
    t_worker = time.perf_counter()
    for dname, n, todo in plan:
        x = make_input(n, cfg["total"], dname, device, cfg["seed"])
        batch = x.shape[0]
        elements = batch * n
        nbytes = 2 * elements * ITEMSIZE[dname]
        x_saved = x.clone()
        checker = Checker(x)
        copy_median = copy_case = copy_rec = None
        group = []
        for impl in todo:
            count += 1
            rec = dict(section="fwht", device=cfg["device"], dtype=dname, threads=threads, n=n,
                       k=n.bit_length() - 1, batch=batch, elements=elements, bytes=nbytes,
                       impl=impl.key, label=impl.label, kind=impl.kind, mode=impl.mode,
                       tol=TOLERANCE[dname])
            gc.collect()
            try:
                if impl.setup:
                    impl.setup()
                case = impl.build(x, n)
                if case.prep:
                    case.prep()
                if dev_type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                ret = case.run()
                if dev_type == "cuda":
                    torch.cuda.synchronize()
                first_s = time.perf_counter() - t0
                err = checker.error(case.result(ret), copy=impl.kind == "copy")
                ok = err == 0.0 if impl.kind == "copy" else err <= TOLERANCE[dname]  # False for NaN
                ret = None
                rec["rel_err"] = err
                if impl.mode != "inplace" and not torch.equal(x, x_saved):
                    x.copy_(x_saved)
                    raise RuntimeError("the implementation modified its input tensor")
                if not ok:
                    rec.update(status="wrong", note=f"relative error {err:.3g} > tolerance "
                                                    f"{TOLERANCE[dname]:.1g}: not timed")
                    log(f"{tag} {dname}] ({count}/{n_meas}) N={_fmt_k(n)} {impl.label}: WRONG "
                        f"(relative error {err:.3g})")
                else:
                    times, inner = timer(case, cfg, first_s)
                    rec.update(status="ok", inner=inner, **_stats(times, elements, nbytes))
                    if cfg.get("keep_times"):
                        rec["times_s"] = times
                    if impl.kind == "copy":
                        copy_median = rec["median_s"]
                        copy_case, copy_rec = case, rec
                    if copy_median:
                        rec["x_copy"] = copy_median / rec["median_s"]
                    log(f"{tag} {dname}] ({count}/{n_meas}) N={_fmt_k(n):>5} batch={batch:<8d} "
                        f"{impl.label:<28s} {rec['ns_per_elem']:9.4g} ns/el {rec['gbps']:8.3g} GB/s"
                        + (f"  x{rec['x_copy']:.2f} copy" if "x_copy" in rec else "")
                        + f"  (IQR {rec['iqr_pct']:.0f}%, {rec['reps']} reps)")
                case = ret = y = None
            except Skip as e:
                rec.update(status="n/a", note=str(e))
            except Exception as e:  # noqa: BLE001
                rec.update(status="error", note=f"{type(e).__name__}: {str(e)[:300]}")
                log(f"{tag} {dname}] ({count}/{n_meas}) N={_fmt_k(n)} {impl.label}: ERROR {rec['note']}")
                if cfg.get("verbose"):
                    log(traceback.format_exc())
            records.append(rec)
            group.append(rec)
        if copy_case is not None and len(group) > 1:
            # Time the copy again after the others and keep the faster of the two medians, so that
            # one disturbed copy measurement (another process on a core) does not skew every ratio.
            if cfg["device_type"] == "cuda":
                torch.cuda.synchronize()
            times, inner = timer(copy_case, cfg, 0.0)
            again = _stats(times, elements, nbytes)
            copy_rec["copy_medians_s"] = [copy_rec["median_s"], again["median_s"]]
            if again["median_s"] < copy_rec["median_s"]:
                copy_rec.update(inner=inner, **again)
                if cfg.get("keep_times"):
                    copy_rec["times_s"] = times
            for r in group:
                if r.get("status") == "ok":
                    r["x_copy"] = copy_rec["median_s"] / r["median_s"]
        copy_case = None
        del x, x_saved, checker
        if dev_type == "cuda":
            torch.cuda.empty_cache()
    if zerofwht._C is not None and "cpp" in cfg["backends"]:
        zerofwht._C.set_cpu_isa(isas[0])
    log(f"{tag}] done in {time.perf_counter() - t_worker:.0f} s")
    return dict(records=records, impls=[i.describe() for i in impls], peers=peer_info,
                threads=threads, torch_threads=torch.get_num_threads(),
                cpu_isa=_cpu_isa(), wall_s=time.perf_counter() - t_worker)


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


# ---- materialization (issue 3): zerofwht.init fills vs torch fill_ and the authors' dense recipe ----
def materialization_worker(cfg: dict, threads: Optional[int]) -> dict:
    """Times zerofwht.init on (8192, 8192) and (32768, 8192) weights (zerofwht/bench_init.py) with
    the largest thread count only (one fill is memory-bound; the other counts add nothing)."""
    import torch
    from zerofwht import bench_init

    counts = [t for t in cfg["threads"] if t is not None]
    if threads is not None:
        torch.set_num_threads(threads)
        if counts and threads != max(counts):
            return {"records": []}
    opts = dict(device=cfg["device"])
    if cfg.get("quick"):
        opts.update(shapes=["2048x2048"], schemes=["hadamard", "zero", "idi"], repeats=3,
                    dense_max_tflop=0.1)
    records = bench_init.run_materialization(opts)
    for r in records:
        r["threads"] = threads
    return {"records": records}


def materialization_render(records: list, meta: dict, style: str = "long") -> str:
    from zerofwht import bench_init

    recs = [r for r in records if r.get("section") == "materialization"]
    if not recs:
        return ""
    head = (f"\n## materialization: zerofwht.init vs torch.empty(...).fill_(1.0) on {recs[0]['device_name']}, "
            f"{recs[0]['threads']} thread(s), {meta.get('date', '')}\n"
            "ratio = fill_ time / our time (>= 1: faster than fill_); dense = the ZerO authors' recipe "
            "(scipy.linalg.hadamard on the host, identity-block products, copy to the device)\n")
    return head + bench_init.format_table(recs)


def materialization_plot(records: list, meta: dict, path: str) -> Optional[str]:
    recs = [r for r in records if r.get("section") == "materialization"]
    if not recs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({("x".join(map(str, r["shape"])), r["dtype"]) for r in recs})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, (shape, dtype) in zip(axes[0], groups):
        rs = [r for r in recs if "x".join(map(str, r["shape"])) == shape and r["dtype"] == dtype]
        ax.bar([r["scheme"] for r in rs], [r["gbps"] for r in rs], color="tab:blue", label="zerofwht.init")
        ax.axhline(rs[0]["fill_gbps"], color="black", ls="--", label="fill_(1.0)")
        ax.set_title(f"{shape} {dtype}")
        ax.set_ylabel("GB/s (bytes written)")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(fontsize=8)
    fig.suptitle(f"weight materialization, {recs[0]['device_name']}, {meta.get('date', '')[:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


SECTIONS = {
    "fwht": Section("fwht", "out-of-place transform vs copy, dense x @ H and public peers",
                    fwht_worker, fwht_render, fwht_plot),
    "materialization": Section("materialization", "zerofwht.init fills vs fill_ and the dense host recipe",
                               materialization_worker, materialization_render, materialization_plot),
}


def _cpu_isa() -> Optional[str]:
    try:
        import zerofwht
        return zerofwht.cpu_isa()
    except Exception:  # noqa: BLE001
        return None


def machine_info(device: str) -> dict:
    import torch
    info = dict(python=sys.version.split()[0], platform=platform.platform(), cpus=os.cpu_count())
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if "cpu" not in info:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in lscpu.splitlines():
            if "cache" in line.lower() and ":" in line:
                a, b = line.split(":", 1)
                info[a.strip()] = b.strip()
    except Exception:  # noqa: BLE001
        pass
    try:
        info["torch_parallel"] = torch.__config__.parallel_info().strip().splitlines()[:8]
    except Exception:  # noqa: BLE001
        pass
    if device.startswith("cuda"):
        d = torch.device(device)
        p = torch.cuda.get_device_properties(d)
        info.update(gpu=p.name, gpu_capability=f"{p.major}.{p.minor}",
                    gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def _machine_busy_s() -> Optional[float]:
    """CPU seconds the whole machine has been busy since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
        ticks = [int(v) for v in parts[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except Exception:  # noqa: BLE001
        return None


class OtherLoad:
    """Average number of cores that OTHER processes kept busy while a worker ran: machine busy time
    minus this process's and its children's CPU time, over the wall time."""

    def __enter__(self):
        self.busy0, self.own0, self.t0 = _machine_busy_s(), os.times(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        busy1, own1 = _machine_busy_s(), os.times()
        wall = time.perf_counter() - self.t0
        self.cores = None
        if self.busy0 is not None and busy1 is not None and wall > 0:
            own = sum(own1[:4]) - sum(self.own0[:4])
            self.cores = max(0.0, (busy1 - self.busy0 - own) / wall)
        return False


def _git_info() -> dict:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return dict(git_commit=rev.stdout.strip(), git_dirty=bool(dirty))
    except Exception:  # noqa: BLE001
        return {}


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
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
                torch_version=torch.__version__, cpu_isa=_cpu_isa(),
                supported_cpu_isas=(zerofwht._C.supported_cpu_isas() if zerofwht._C is not None
                                    and hasattr(zerofwht._C, "supported_cpu_isas") else None),
                # the cache sizes the CPU kernel's plans were cut to (see csrc/fwht_cpu.h, CpuTuning)
                cpu_tuning=(zerofwht._C.cpu_tuning() if zerofwht._C is not None
                            and hasattr(zerofwht._C, "cpu_tuning") else None),
                backends=zerofwht.backends(), config=cfg, machine=machine_info(cfg["device"]),
                **_git_info())
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
