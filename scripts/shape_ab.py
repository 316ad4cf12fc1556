"""Alternating A/B runs of the shapes real layers give the CPU transform: builds side by side.

    python scripts/shape_ab.py --rounds 12 --threads 1 --ks 6,8,10,12,16 /tmp/previous .
    python scripts/shape_ab.py --rounds 10 --threads 2 --layers /tmp/previous .

peer_bench (and scripts/peer_ab.py) time square rows packed back to back. This times, per n, a
`(total / n, n)` fp32 input (`total` = 2^22 row elements unless --total says otherwise):

    square      zerofwht.fwht(x)
    dout-16     zerofwht.fwht(x, out_features=n - 16)      (a truncated output)
    dout-24     zerofwht.fwht(x, out_features=n - 24)      (rows that do not start on a line)
    din-24      zerofwht.fwht(x[:, :n - 24] as its own tensor, n=n)   (a padded input)
    both-24     padded and truncated
    din/4       zerofwht.fwht(x[:, :n/4] as its own tensor, n=n)   (padded to four times its length)
    out=wide    zerofwht.fwht(x, out=rows of a (rows, n + 64) tensor)  (an out= slice)

in ns per row element (rows * n), and with --layers the forward of `zerofwht.nn.HadamardLinear`
(bias, under torch.no_grad()) for a few layer shapes, in microseconds per call. Each VARIANT is
CHECKOUT[,NAME=VALUE...] as in scripts/peer_ab.py: a directory with a built `zerofwht` (put on
PYTHONPATH) and environment settings. Every round runs one worker process per variant, in turn;
the table gives the median over the rounds of each worker's median over --reps calls. Give one
checkout twice (`. .,X=1`) first to see how far apart the machine's noise alone puts two columns.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_ab import parse_variant, timing  # noqa: E402  (timing: the project's harness)

LAYERS = [(4096, 1000, 1000), (8192, 768, 3072), (8192, 3072, 768), (65536, 100, 100), (16384, 200, 10),
          (16384, 300, 2000)]


def transform_cases(k: int, total: int):
    """(name, call) pairs for one n = 2^k; each call runs the transform once."""
    import torch
    import zerofwht

    n = 1 << k
    rows = max(1, total // n)
    x = torch.randn(rows, n)
    cases = [(f"2^{k} square", lambda: zerofwht.fwht(x))]
    if n > 24:
        xp = torch.randn(rows, n - 24)
        cases += [(f"2^{k} dout-16", lambda: zerofwht.fwht(x, out_features=n - 16)),
                  (f"2^{k} dout-24", lambda: zerofwht.fwht(x, out_features=n - 24)),
                  (f"2^{k} din-24", lambda: zerofwht.fwht(xp, n=n)),
                  (f"2^{k} both-24", lambda: zerofwht.fwht(xp, n=n, out_features=n - 24))]
    if n >= 64:
        xq = torch.randn(rows, n // 4)
        cases.append((f"2^{k} din/4", lambda: zerofwht.fwht(xq, n=n)))
    wide = torch.empty(rows, n + 64)[:, :n]
    cases.append((f"2^{k} out=wide", lambda: zerofwht.fwht(x, out=wide)))
    return cases


def layer_cases(scale_rows: float):
    import torch
    from zerofwht.nn import HadamardLinear

    cases = []
    for batch, fin, fout in LAYERS:
        batch = max(1, int(batch * scale_rows))
        layer = HadamardLinear(fin, fout)
        x = torch.randn(batch, fin)
        cases.append((f"layer {batch}x{fin}->{fout}", lambda layer=layer, x=x: layer(x)))
    return cases


def worker(args) -> int:
    import torch

    torch.set_num_threads(args.threads)
    out = {}
    with torch.no_grad():
        for k in args.ks:
            for name, call in transform_cases(k, args.total):
                out[name] = timing.median_call_s(call, args.reps) * 1e9 / (max(1, args.total >> k) << k)
        if args.layers:
            for name, call in layer_cases(args.layer_rows):
                out[name] = timing.median_call_s(call, args.reps) * 1e6
    print(json.dumps(out))
    return 0


def run_worker(args, checkout: str, env: dict) -> dict:
    cmd = [args.python, os.path.abspath(__file__), "--worker", "--threads", str(args.threads),
           "--ks", ",".join(map(str, args.ks)), "--total", str(args.total), "--reps", str(args.reps),
           "--layer-rows", str(args.layer_rows)] + (["--layers"] if args.layers else [])
    full_env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout), **env)
    proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {checkout} {env}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(specs: list, runs: dict) -> str:
    names = list(runs[specs[0]][0])
    head = "| case | " + " | ".join(f"`{s}`" for s in specs) + " |"
    rule = "|---" * (len(specs) + 1) + "|"
    rows = []
    for name in names:
        unit = "µs / call" if name.startswith("layer") else "ns / element"
        cells = [f"{statistics.median(r[name] for r in runs[s]):.3f}" for s in specs]
        rows.append(f"| {name} ({unit}) | " + " | ".join(cells) + " |")
    return "\n".join([head, rule] + rows)


def parse_ks(text: str) -> list:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ks must be a comma list of log2(n), got {text!r}") from None
    if not ks or any(k < 1 or k > 26 for k in ks):
        raise argparse.ArgumentTypeError(f"--ks values must be in 1..26, got {text!r}")
    return ks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("variants", nargs="*", metavar="VARIANT", help="CHECKOUT[,NAME=VALUE...]")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ks", type=parse_ks, default=parse_ks("6,8,10,12,16"), help="comma list of log2(n)")
    ap.add_argument("--total", type=int, default=1 << 22, help="row elements per transform call")
    ap.add_argument("--reps", type=int, default=15, help="timed calls per case and worker")
    ap.add_argument("--layers", action="store_true", help="also time HadamardLinear forwards")
    ap.add_argument("--layer-rows", type=float, default=1.0, help="scale the layers' batch sizes")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch (default: this one)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if not args.variants:
        ap.error("give at least one VARIANT (a checkout with a built zerofwht)")
    if args.rounds < 1 or args.threads < 1 or args.reps < 1 or args.total < 1:
        ap.error(f"--rounds, --threads, --reps and --total must be >= 1, got {args.rounds}, "
                 f"{args.threads}, {args.reps}, {args.total}")
    try:
        specs = [(v, *parse_variant(v)) for v in args.variants]
    except ValueError as exc:
        ap.error(str(exc))
    settings = {v: (checkout, env) for v, checkout, env in specs}
    runs = timing.interleaved_rounds(list(settings), args.rounds,
                                     lambda v: run_worker(args, *settings[v]))
    print(summarize([v for v, _, _ in specs], runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
