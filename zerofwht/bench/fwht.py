"""Section ``fwht`` of the benchmark: the worker that measures every implementation for one
thread count (input, fp64 check, timing, copy ratio)."""
from __future__ import annotations

import gc
import time
import traceback
from typing import Optional

from .common import ITEMSIZE, TOLERANCE, Skip, log
from .impls import copy_impl, dense_impl, own_impls, peer_impls
from .machine import cpu_isa as _cpu_isa
from .timing import _stats, first_call, time_cpu, time_cuda


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
                ret, first_s = first_call(case, device)
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
