"""The one timing harness of the project: CPU wall-clock and CUDA-event timing, medians and
quartiles, and interleaving (calls or whole runs alternated so that slow and quiet periods of the
machine fall on every contender alike).

Users: the benchmark CLI (``time_cpu`` / ``time_cuda`` of a ``Case``, ``first_call``,
``summarize``), the pytest benchmarks (``first_call``, ``synced``), ``scripts/shape_ab.py``
(``median_call_s``, ``interleaved_rounds``), ``scripts/peer_ab.py`` (``interleaved_rounds``) and
``examples/speed_in_model.py`` (``time_alternating``).

This module imports nothing from the package (torch only, lazily): the A/B scripts load it by file
path into worker processes that import another checkout's ``zerofwht``.
"""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass
class Case:
    """``run()`` is the timed call; ``prep()`` (untimed) runs before each call (in-place forms get a
    fresh copy of the input); ``result(ret)`` turns ``run()``'s return value into the output
    tensor (any device) that is checked against the reference."""
    run: Callable[[], Any]
    result: Callable[[Any], Any]
    prep: Optional[Callable[[], None]] = None


def sync(device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device is not None and getattr(device, "type", device) == "cuda":
        import torch
        torch.cuda.synchronize(device)


def synced(call: Callable[[], Any], device) -> Callable[[], Any]:
    """``call`` followed by a device synchronization (for timers that read a host clock)."""
    if device is None or getattr(device, "type", device) != "cuda":
        return call

    def run():
        ret = call()
        sync(device)
        return ret
    return run


def first_call(case: Case, device) -> tuple:
    """``(return value, seconds)`` of one untimed-protocol call of ``case`` (after its ``prep``),
    synchronized: the call whose output is checked before anything is timed."""
    if case.prep:
        case.prep()
    sync(device)
    t0 = time.perf_counter()
    ret = case.run()
    sync(device)
    return ret, time.perf_counter() - t0


def median_call_s(call: Callable[[], Any], reps: int, warmup: int = 1, device=None) -> float:
    """Median wall-clock seconds of ``reps`` calls after ``warmup`` untimed ones (synchronized on
    CUDA)."""
    for _ in range(warmup):  # the output cache, the plan, the page tables
        call()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_alternating(fns: dict, device, budget_s: float, min_reps: int, max_reps: int,
                     clock: Callable[[], float] = time.perf_counter) -> tuple:
    """``({name: median seconds}, rounds)`` of each fn, calling them in turn (A, B, C, A, B, C, ...)
    after a warm-up; the number of rounds fits ``budget_s`` from the fastest warm-up call (a stall
    during warm-up must not cut the repetitions), within ``[min_reps, max_reps]``. ``clock``: the
    wall clock, or e.g. ``time.thread_time`` for one-threaded CPU work on a shared machine (the
    time other processes hold the core is then left out)."""
    est = {}
    for name, fn in fns.items():  # warm-up, and an estimate of the cost
        fn()
        sync(device)
        times = []
        for _ in range(2):
            t = clock()
            fn()
            sync(device)
            times.append(clock() - t)
            if times[-1] > 0.2:
                break
        est[name] = min(times)
    reps = int(min(max_reps, max(min_reps, budget_s / max(sum(est.values()), 1e-9))))
    samples = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            sync(device)
            t = clock()
            fn()
            sync(device)
            samples[name].append(clock() - t)
    return {name: statistics.median(v) for name, v in samples.items()}, reps


def interleaved_rounds(variants: list, rounds: int, run_one: Callable[[Any], Any],
                       label: Callable[[Any], str] = str) -> dict:
    """``{variant: [result of each round]}``: every round runs ``run_one(variant)`` once per variant,
    in turn (whole benchmark runs alternated, e.g. one worker process per build)."""
    runs = {v: [] for v in variants}
    for r in range(rounds):
        for v in variants:
            print(f"round {r + 1}/{rounds}: {label(v)}", file=sys.stderr, flush=True)
            runs[v].append(run_one(v))
    return runs


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
