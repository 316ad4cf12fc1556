"""The benchmark of scripts/gpu_check.sh: every backend against a copy of the same bytes.

    python scripts/gpu_bench.py --device cuda --out bench.json [--quick]
    python scripts/gpu_bench.py --device cpu --tiny --out bench.json    (the harness on a CPU)

Rows of the JSON ("records"): kind (fwht / init / linear), what, backend, dtype, n or shape,
median ms, the baseline's median ms and the ratio to it:
  fwht:   each backend (cuda, triton, torch; fast_hadamard_transform when ZEROFWHT_FHT_PATH makes
          it importable) on rows x n (about 2^24 elements) vs a device-to-device copy of the same
          bytes (read x, write y: what a perfect one-pass kernel moves);
  init:   the fills (hadamard_, idi_) per backend vs w.fill_(0) on the same tensor;
  linear: HadamardLinear vs nn.Linear with the dense weight, same input (forward).
Timing: CUDA events around blocks of calls (block long enough to dwarf launch gaps), median over
blocks after warm-up; on the CPU, time.perf_counter. A backend that cannot run a case is recorded
with its reason instead of a time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def timer(device: str, fn, *, reps: int, blocks: int, warmup: int = 2) -> float:
    """Median milliseconds per call of fn() over `blocks` blocks of `reps` calls."""
    import torch
    for _ in range(warmup):
        fn()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        for _ in range(blocks):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(reps):
                fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / reps)
    else:
        for _ in range(blocks):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times.append((time.perf_counter() - t0) * 1e3 / reps)
    return statistics.median(times)


def reps_for(device: str, nbytes: int, tiny: bool) -> tuple[int, int]:
    if tiny:
        return 2, 3
    # about 1 ms per block on an H100 for the copy of these bytes (~3 TB/s), at least 5 calls
    return max(5, min(200, int(3e9 * 1e-3 / max(nbytes, 1)))), 9


def fht_module():
    path = os.environ.get("ZEROFWHT_FHT_PATH")
    if not path:
        return None, "ZEROFWHT_FHT_PATH not set (gpu_check.sh sets it when ZEROFWHT_FHT_SRC is given)"
    sys.path.insert(0, path)
    try:
        import fast_hadamard_transform as fht
        return fht, None
    except Exception as exc:  # noqa: BLE001
        return None, f"fast_hadamard_transform does not import ({type(exc).__name__}: {exc})"


def bench_fwht(dev, dtypes, log_ns, backends, tiny, records):
    import torch
    import zerofwht
    fht, fht_reason = fht_module() if dev == "cuda" else (None, "CPU run")
    total = 1 << (12 if tiny else 24)
    for dt in dtypes:
        for ln in log_ns:
            n = 1 << ln
            rows = max(1, total // n)
            x = torch.randn(rows, n, device=dev).to(dt)
            y = torch.empty_like(x)
            nbytes = 2 * x.numel() * x.element_size()
            reps, blocks = reps_for(dev, nbytes, tiny)
            base = timer(dev, lambda: y.copy_(x), reps=reps, blocks=blocks)
            common = dict(kind="fwht", dtype=str(dt).replace("torch.", ""), n=n, rows=rows,
                          baseline="copy", baseline_ms=round(base, 5), bytes=nbytes)
            for be in backends + (["fast_hadamard_transform"] if dev == "cuda" else []):
                rec = dict(common, backend=be)
                if be == "fast_hadamard_transform":
                    if fht is None:
                        rec["skipped"] = fht_reason
                    elif dt == torch.float64 or n > 1 << 15:
                        rec["skipped"] = "fast_hadamard_transform takes fp16/bf16/fp32 and n <= 2^15"
                    else:
                        rec["ms"] = timer(dev, lambda: fht.hadamard_transform(x, 1.0), reps=reps, blocks=blocks)
                else:
                    try:
                        zerofwht.fwht(x[:1], backend=be)
                        rec["ms"] = timer(dev, lambda: zerofwht.fwht(x, out=y, backend=be), reps=reps, blocks=blocks)
                    except Exception as exc:  # noqa: BLE001  (a backend refusing a case)
                        rec["skipped"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                if "ms" in rec:
                    rec["ms"] = round(rec["ms"], 5)
                    rec["ratio_to_baseline"] = round(rec["ms"] / base, 3)
                    rec["GBps"] = round(nbytes / rec["ms"] / 1e6, 1)
                records.append(rec)
                print(json.dumps(rec))
            del x, y


def bench_init(dev, backends, tiny, records):
    import torch
    from zerofwht import init
    shapes = [(64, 48), (8, 4, 3, 3)] if tiny else [(4096, 4096), (512, 512, 3, 3), (16384, 4096)]
    for shape in shapes:
        for dt in ([torch.float32] if tiny else [torch.float32, torch.bfloat16]):
            w = torch.empty(shape, device=dev, dtype=dt)
            nbytes = w.numel() * w.element_size()
            reps, blocks = reps_for(dev, nbytes, tiny)
            base = timer(dev, lambda: w.fill_(0), reps=reps, blocks=blocks)
            for fname, fn in (("hadamard_", init.hadamard_), ("idi_", init.idi_)):
                for be in backends:
                    rec = dict(kind="init", what=fname, backend=be, dtype=str(dt).replace("torch.", ""),
                               shape=list(shape), baseline="fill_", baseline_ms=round(base, 5), bytes=nbytes)
                    try:
                        fn(w, backend=be)
                        rec["ms"] = round(timer(dev, lambda: fn(w, backend=be), reps=reps, blocks=blocks), 5)
                        rec["ratio_to_baseline"] = round(rec["ms"] / base, 3)
                    except Exception as exc:  # noqa: BLE001
                        rec["skipped"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                    records.append(rec)
                    print(json.dumps(rec))


def bench_linear(dev, tiny, records):
    import torch
    from zerofwht.nn import HadamardLinear
    cases = [(64, 256, 256)] if tiny else [(8192, 4096, 4096), (8192, 1024, 4096), (8192, 4096, 1024)]
    for dt in ([torch.float32] if tiny else [torch.bfloat16, torch.float16]):
        for tokens, d_in, d_out in cases:
            layer = HadamardLinear(d_in, d_out, device=dev, dtype=dt)
            lin = layer.to_linear()
            x = torch.randn(tokens, d_in, device=dev, dtype=dt)
            reps, blocks = reps_for(dev, x.numel() * x.element_size() * 4, tiny)
            with torch.no_grad():
                base = timer(dev, lambda: lin(x), reps=reps, blocks=blocks)
                ms = timer(dev, lambda: layer(x), reps=reps, blocks=blocks)
            rec = dict(kind="linear", what=f"{tokens}x{d_in}->{d_out}", backend="HadamardLinear",
                       dtype=str(dt).replace("torch.", ""), baseline="nn.Linear", baseline_ms=round(base, 5),
                       ms=round(ms, 5), ratio_to_baseline=round(ms / base, 3))
            records.append(rec)
            print(json.dumps(rec))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and dtypes (gpu_check --quick)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes, few repetitions (CPU smoke run)")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    import torch
    dev = args.device
    records: list = []
    if args.tiny:
        dtypes, log_ns = [torch.float32], [8, 12]
        backends = ["cpp", "torch"] if dev == "cpu" else ["cuda", "triton", "torch"]
    elif args.quick:
        dtypes, log_ns, backends = [torch.float16, torch.float32], [10, 15, 20, 24], ["cuda", "triton", "torch"]
    else:
        dtypes = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
        log_ns, backends = [8, 10, 12, 15, 18, 21, 24], ["cuda", "triton", "torch"]
    t0 = time.time()
    bench_fwht(dev, dtypes, log_ns, backends, args.tiny, records)
    bench_init(dev, ["cpp", "torch"] if dev == "cpu" else ["cuda", "triton", "torch"], args.tiny, records)
    if not args.quick:
        bench_linear(dev, args.tiny, records)
    meta = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__,
            "timer": "CUDA events, median of blocks" if dev == "cuda" else "perf_counter, median of blocks",
            "note": args.note, "seconds": round(time.time() - t0, 1)}
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    print(f"gpu_bench: {len(records)} records in {meta['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
