"""The one timing harness of the project: CPU wall-clock and CUDA-event timing of a ``Case``,
medians and quartiles (``summarize``). Used by the benchmark CLI, the A/B scripts, the examples
and the pytest benchmarks."""
from __future__ import annotations

import gc
import math
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
