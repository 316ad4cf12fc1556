"""HadamardLinear against nn.Linear of the same shape, inside a training step.

Square layers width x width with bias, batch 256, fp32: forward (under no_grad) and forward +
backward (input requires grad; nn.Linear also computes its weight and bias gradients, as in
training; HadamardLinear has only a bias). Medians of repeated timings, the two layers measured
alternately in the same run. CPU always; CUDA too when a GPU is present. Also the pure-PyTorch
backend of HadamardLinear (``backend="torch"``) for reference.

The bar: at width 4096, batch 256, HadamardLinear forward+backward >= 10x faster than
nn.Linear on the CPU.

    python examples/speed_in_model.py [--out DIR] [--quick] [--threads 1,2] [--batch 256]
"""
from __future__ import annotations

import math
import time

import torch
from torch import nn

import _common as C
from zerofwht.bench.timing import time_alternating  # the project's one timing harness
from zerofwht.nn import HadamardLinear


def make_linear(width, device):
    # meta -> to_empty -> fill: skips nn.Linear's Kaiming-uniform (slow at 16384^2); values are
    # normal with std 1/sqrt(width) (no denormals, no NaN from uninitialized memory).
    lin = nn.Linear(width, width, device="meta").to_empty(device=device)
    with torch.no_grad():
        lin.weight.normal_(0, width ** -0.5)
        lin.bias.zero_()
    return lin


def step_fns(module, x, gy):
    def fwd():
        with torch.no_grad():
            module(x)

    xg = x.detach().clone().requires_grad_()

    def fwd_bwd():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        module(xg).backward(gy)

    return fwd, fwd_bwd


def bench_device(device, widths, batch, budget_s, min_reps, max_reps):
    rows = []
    for width in widths:
        g = torch.Generator(device=device).manual_seed(width)
        x = torch.randn(batch, width, device=device, generator=g)
        gy = torch.randn(batch, width, device=device, generator=g)
        lin = make_linear(width, device)
        had = HadamardLinear(width, width, device=device)
        had_torch = HadamardLinear(width, width, device=device, backend="torch")
        lf, lfb = step_fns(lin, x, gy)
        hf, hfb = step_fns(had, x, gy)
        _, tfb = step_fns(had_torch, x, gy)
        lo = min(min_reps, 3) if width >= 8192 else min_reps  # one nn.Linear step there: ~1 s
        fwd, reps_f = time_alternating({"linear": lf, "hadamard": hf}, device, budget_s, lo,
                                       max_reps)
        fb, reps_b = time_alternating({"linear": lfb, "hadamard": hfb, "hadamard_torch": tfb},
                                      device, budget_s, lo, max_reps)
        rows.append(dict(width=width, lin_f=fwd["linear"], had_f=fwd["hadamard"],
                         lin_fb=fb["linear"], had_fb=fb["hadamard"], tor_fb=fb["hadamard_torch"],
                         reps=f"{reps_f}/{reps_b}"))
        print(f"  {device.type} ({torch.get_num_threads()} threads) width {width}: "
              f"{reps_f}/{reps_b} reps", flush=True)
        del lin, had, had_torch, x, gy
    return rows


def ms(t):
    return f"{1e3 * t:.3f}" if t < 0.01 else f"{1e3 * t:.1f}"


def main():
    args = C.parse_args(__doc__.splitlines()[0], lambda p: (
        p.add_argument("--threads", default="1,2",
                       help="comma-separated torch thread counts to measure on CPU (default 1,2)"),
        p.add_argument("--batch", type=int, default=256),
        p.add_argument("--max-width", type=int, default=16384)))
    thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
    widths = [1 << k for k in range(8, int(math.log2(args.max_width)) + 1)]
    budget, min_reps, max_reps = 1.5, 5, 50
    if args.quick:
        widths, budget, min_reps, max_reps = [256, 1024], 0.05, 2, 3
        thread_counts = thread_counts[:1]
    default_threads = torch.get_num_threads()
    t0 = time.perf_counter()
    results = {}  # (device type, threads or None) -> rows
    for threads in thread_counts:
        torch.set_num_threads(threads)
        results[("cpu", threads)] = bench_device(torch.device("cpu"), widths, args.batch, budget,
                                                 min_reps, max_reps)
    torch.set_num_threads(default_threads)
    if torch.cuda.is_available():
        results[("cuda", None)] = bench_device(torch.device("cuda"), widths, args.batch, budget,
                                               min_reps, max_reps)
    elapsed = time.perf_counter() - t0

    parts = [C.header("HadamardLinear vs nn.Linear in a training step"),
             f"square layers with bias, batch {args.batch}, fp32, medians; fwd under no_grad, "
             f"fwd+bwd with grad of the input (nn.Linear also computes its weight gradient); "
             f"HadamardLinear uses the auto backend (C++ kernel on CPU), 'torch' = its pure-PyTorch "
             f"backend; layers timed alternately in the same run; {elapsed:.0f} s. The CPU is "
             f"shared with other jobs: with 2 threads a preempted thread stalls the other, so the "
             f"1-thread table is the steadier one."]
    verdicts = []
    for (dev, threads), rows in results.items():
        name = f"CPU, {threads} thread(s)" if dev == "cpu" else torch.cuda.get_device_name(0)
        table_rows = [[r["width"], ms(r["lin_f"]), ms(r["had_f"]), f"{r['lin_f'] / r['had_f']:.1f}x",
                       ms(r["lin_fb"]), ms(r["had_fb"]), f"{r['lin_fb'] / r['had_fb']:.1f}x",
                       ms(r["tor_fb"]), r["reps"]] for r in rows]
        parts += ["", f"### {name}", "",
                  C.table(["width", "Linear fwd ms", "Hadamard fwd ms", "fwd speedup",
                           "Linear fwd+bwd ms", "Hadamard fwd+bwd ms", "fwd+bwd speedup",
                           "Hadamard 'torch' fwd+bwd ms", "reps fwd/fwd+bwd"], table_rows)]
        at = [r for r in rows if r["width"] == 4096]
        if dev == "cpu" and at and args.batch == 256:
            sp = at[0]["lin_fb"] / at[0]["had_fb"]
            verdicts.append(f"Bar: width 4096, batch 256, CPU {threads} thread(s), fwd+bwd: "
                            f"HadamardLinear is {sp:.1f}x faster than nn.Linear (needs >= 10x): "
                            f"{'PASS' if sp >= 10 else 'FAIL'}")
    if verdicts:
        parts += [""] + verdicts
    if not torch.cuda.is_available():
        parts += ["", "No CUDA device here: GPU rows not measured."]
    C.write_report(args.out, "speed_in_model", "\n".join(parts))

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, ((dev, threads), rows) in enumerate(results.items()):
        tag = f"{dev}, {threads}t" if threads else dev
        w = [r["width"] for r in rows]
        color = f"C{i}"
        axes[0].plot(w, [1e3 * r["lin_fb"] for r in rows], "-", color=color, marker="s", ms=3,
                     label=f"nn.Linear fwd+bwd ({tag})")
        axes[0].plot(w, [1e3 * r["had_fb"] for r in rows], "--", color=color, marker="o", ms=3,
                     label=f"HadamardLinear fwd+bwd ({tag})")
        axes[1].plot(w, [r["lin_f"] / r["had_f"] for r in rows], "--", color=color, marker="o",
                     ms=3, label=f"fwd ({tag})")
        axes[1].plot(w, [r["lin_fb"] / r["had_fb"] for r in rows], "-", color=color, marker="s",
                     ms=3, label=f"fwd+bwd ({tag})")
    axes[0].set_ylabel("time per step (ms)")
    axes[1].set_ylabel("speedup: nn.Linear time / HadamardLinear time")
    axes[1].axhline(10, color="gray", ls=":", lw=1, label="10x")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(f"width (in = out), batch {args.batch}")
        ax.legend(fontsize=7)
    fig.suptitle("HadamardLinear vs nn.Linear (fp32, medians)")
    fig.tight_layout()
    png = f"{args.out}/speed_in_model.png"
    fig.savefig(png, dpi=120)
    print(f"\nwrote {png}")


if __name__ == "__main__":
    main()
