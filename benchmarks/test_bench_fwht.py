"""pytest-benchmark sweep of the transform: the same cases as ``python -m zerofwht.bench``.

One benchmark per (device, dtype, threads, N, implementation), implementation being ``copy``
(``out.copy_(x)`` into a preallocated tensor, the bandwidth reference), every zerofwht backend that
runs on the device (out-of-place ``zerofwht.fwht(x, backend=...)``), ``dense`` (``x @ H``, N <=
2^12) and the public peers that import (``ffht``, ``fht_cpu`` in place on numpy with an untimed
fresh copy before each call; ``fast_hadamard_transform`` on CUDA). Every implementation's output is
checked against the fp64 reference before it is timed. Results are grouped per (dtype, threads, N)
so that each table compares against the copy; see conftest.py for the options and the summary.
"""
from __future__ import annotations


import pytest
import torch

import zerofwht
from zerofwht.bench import common, fwht as bench_fwht, impls, timing

DENSE_MAX = 1 << 12


def _parse_ks(text: str) -> list:
    ks = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            ks.extend(range(int(a), int(b) + 1))
        else:
            ks.append(int(part))
    return sorted(set(ks))


def _settings(config) -> dict:
    device = config.getoption("--bench-device") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev_type = torch.device(device).type
    dtypes = config.getoption("--bench-dtypes")
    dtypes = list(common.DTYPE_NAMES) if dtypes == "all" else [
        common.DTYPE_ALIASES.get(d.strip().lower(), d.strip().lower()) for d in dtypes.split(",") if d.strip()]
    threads = ([int(t) for t in config.getoption("--bench-threads").split(",") if t.strip()]
               if dev_type == "cpu" else [None])
    total = config.getoption("--bench-total")
    total = int(total) if total else common.DEFAULT_TOTAL[dev_type]
    return dict(device=device, dev_type=dev_type, dtypes=dtypes, threads=threads, total=total,
                ks=_parse_ks(config.getoption("--bench-ks")))


def _candidates(dev_type: str) -> list:
    """(key, dtypes or None, max_n or None) of everything that can run on this device."""
    out = [("copy", None, None)]
    for b in zerofwht.backends():
        if b["available"] and ("any" in b["devices"] or dev_type in b["devices"]):
            out.append((b["name"], tuple(b["dtypes"]), b["max_n"]))
    peers, _ = impls.peer_impls(dev_type, list(impls.PEERS), 1)
    out += [(p.key, p.dtypes, p.max_n) for p in peers]
    out.append(("dense", None, DENSE_MAX))
    return out


def pytest_generate_tests(metafunc):
    if "spec" not in metafunc.fixturenames:
        return
    s = _settings(metafunc.config)
    cands = _candidates(s["dev_type"])
    specs, ids = [], []
    for dtype in s["dtypes"]:
        for threads in s["threads"]:
            for k in s["ks"]:
                n = 1 << k
                for key, dts, max_n in cands:
                    if (dts is None or dtype in dts) and (max_n is None or n <= max_n):
                        specs.append(dict(device=s["device"], dtype=dtype, threads=threads, n=n,
                                          impl=key, total=s["total"]))
                        ids.append(f"{dtype}-{'gpu' if threads is None else f't{threads}'}-N=2^{k}-{key}")
    metafunc.parametrize("spec", specs, ids=ids)


def _impl(key: str, dev_type: str, threads):
    if key == "copy":
        return impls.copy_impl()
    if key == "dense":
        return impls.dense_impl(DENSE_MAX)
    if key in impls.PEERS:
        found, info = impls.peer_impls(dev_type, [key], threads or 1)
        if not found:
            pytest.skip(f"{key}: {info[key]['reason']}")
        return found[0]
    return impls.own_impls(dev_type, [key], ["oop"], ["auto"])[0]


def test_fwht(benchmark, spec, request):
    dev_type = torch.device(spec["device"]).type
    if spec["threads"] is not None:
        torch.set_num_threads(spec["threads"])
    n, dtype = spec["n"], spec["dtype"]
    x = bench_fwht.make_input(n, spec["total"], dtype, spec["device"])
    batch = x.shape[0]
    impl = _impl(spec["impl"], dev_type, spec["threads"])
    case = impl.build(x, n)

    # Correctness first: a wrong implementation is never reported as fast.
    ret, first_s = timing.first_call(case, torch.device(spec["device"]))
    err = bench_fwht.Checker(x).error(case.result(ret), copy=impl.kind == "copy")
    ret = None
    tol = 0.0 if impl.kind == "copy" else common.TOLERANCE[dtype]
    assert err <= tol, f"{impl.label}: relative error {err:.3g} > {tol:.1g} against the fp64 reference"

    fn = timing.synced(case.run, torch.device(spec["device"]))  # pytest-benchmark reads a host clock
    nbytes = 2 * batch * n * common.ITEMSIZE[dtype]
    thr = "gpu" if spec["threads"] is None else f"t{spec['threads']}"
    benchmark.group = f"fwht {spec['device']} {dtype} {thr} N=2^{n.bit_length() - 1} batch={batch}"
    benchmark.extra_info.update(impl=impl.key, label=impl.label, kind=impl.kind, mode=impl.mode,
                                n=n, batch=batch, dtype=dtype, threads=spec["threads"],
                                bytes=nbytes, rel_err=err)
    if case.prep:  # in-place peers: a fresh copy of the input (untimed) before every call
        rounds = max(5, min(200, int(0.5 / max(first_s, 1e-6))))
        benchmark.pedantic(fn, setup=case.prep, rounds=rounds, warmup_rounds=1, iterations=1)
    else:
        benchmark(fn)

    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    median = getattr(stats, "median", None)
    if median:
        gbps = nbytes / median / 1e9
        benchmark.extra_info.update(median_s=median, ns_per_elem=median / (batch * n) * 1e9, gbps=gbps)
        request.config._zerofwht_bench_results.append(dict(
            device=spec["device"], dtype=dtype, threads=spec["threads"], n=n, impl=impl.key,
            median_s=median, gbps=gbps))
