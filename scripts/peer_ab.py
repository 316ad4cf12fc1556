"""Alternating A/B runs of ../shared/tools/peer_bench.py: builds (or settings) of zerofwht side by side.

    python scripts/peer_ab.py --rounds 8 --ks 17,18,19,20 --threads 1 . /tmp/wt,ZEROFWHT_CPU_STREAM=0

Each VARIANT is CHECKOUT[,NAME=VALUE...]: a directory holding a built `zerofwht` package (put on
PYTHONPATH) and environment settings for that run. Every round runs peer_bench once per variant,
in turn, so that slow and quiet periods of the machine fall on all variants alike. Each run times
`zerofwht.fwht` (out of place), `zerofwht.fwht_` (in place, under the peers' protocol: an untimed
refill before every call), the in-place peers and `copy_`. The table gives, per (threads, n), the
median over the rounds of each run's median, in ns per element, and the fastest in-place peer.

Give one checkout twice (`. .,X=1`) to see what the machine's noise alone does to the comparison:
on the shared 2-core guest of benchmarks/cpu_tuning_log.md, ten rounds of one build against
itself differed by up to 25 % in a cell; forty rounds agreed within 1.5 % (one thread) and 9 %
(two threads) out of place.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_peer_bench  # noqa: E402  (the same reading of peer_bench's records)


def load_timing():
    """The project's timing harness (zerofwht/bench/timing.py of THIS checkout), loaded by file
    path: the A/B workers import another checkout's zerofwht, which may predate it."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "zerofwht", "bench", "timing.py")
    spec = importlib.util.spec_from_file_location("zerofwht_bench_timing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


timing = load_timing()

PEERS_IN_PLACE = tuple(k for k in plot_peer_bench.PEERS if k.endswith("_inplace"))
ONLY = "copy_into|" + "|".join(PEERS_IN_PLACE) + "|zerofwht"
EXTRAS = ("zerofwht:fwht", "zerofwht:fwht_:none:torch:inplace")


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """'CHECKOUT[,NAME=VALUE...]' -> (checkout, env)."""
    checkout, *settings = spec.split(",")
    if not checkout:
        raise ValueError(f"variant {spec!r}: the checkout directory is missing")
    env = {}
    for s in settings:
        name, eq, value = s.partition("=")
        if not eq or not name:
            raise ValueError(f"variant {spec!r}: setting {s!r} is not NAME=VALUE")
        env[name] = value
    return checkout, env


def cells(run_json: str) -> dict[tuple[int, int], dict[str, float]]:
    """One peer_bench JSON (fp32) -> {(threads, k): {'oop': ours, 'inplace': ours in place, 'peer': fastest}}."""
    out = {}
    for tk, cell in plot_peer_bench.load([run_json], "float32")[0].items():
        c = {}
        if plot_peer_bench.OURS in cell:
            c["oop"] = cell[plot_peer_bench.OURS]
        if plot_peer_bench.OURS_INPLACE in cell:
            c["inplace"] = cell[plot_peer_bench.OURS_INPLACE]
        peers = [cell[k] for k in PEERS_IN_PLACE if k in cell]
        if peers:
            c["peer"] = min(peers)
        out[tk] = c
    return out


def summarize(runs: dict[str, list[dict]]) -> str:
    """runs[variant] = list of cells() per round -> markdown table of medians over the rounds."""
    keys = sorted({k for per_round in runs.values() for c in per_round for k in c})
    peer_times = collections.defaultdict(list)
    rows = []
    for variant, per_round in runs.items():
        for what, label in (("oop", "out of place"), ("inplace", "in place")):
            values = []
            for k in keys:
                ts = [c[k][what] for c in per_round if what in c.get(k, {})]
                values.append(f"{statistics.median(ts):.3f}" if ts else "-")
            rows.append(f"| `{variant}` {label} | " + " | ".join(values) + " |")
        for c in per_round:
            for k in keys:
                if "peer" in c.get(k, {}):
                    peer_times[k].append(c[k]["peer"])
    head = "| variant | " + " | ".join(f"{t}t 2^{k}" for t, k in keys) + " |"
    rule = "|---" * (len(keys) + 1) + "|"
    peer = "| fastest peer (in place) | " + " | ".join(
        f"{statistics.median(peer_times[k]):.3f}" if peer_times[k] else "-" for k in keys) + " |"
    return "\n".join([head, rule, peer] + rows)


def run_once(args, checkout: str, env: dict[str, str], out_json: str) -> dict:
    cmd = [args.python, args.peer_bench, "--ks", args.ks, "--threads", args.threads, "--dtypes", "float32",
           "--only", ONLY, "--json", out_json]
    for e in EXTRAS:
        cmd += ["--extra", e]
    full_env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout), **env)
    proc = subprocess.run(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"peer_bench failed for {checkout} {env}:\n{proc.stderr[-2000:]}")
    return cells(out_json)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("variants", nargs="+", metavar="VARIANT", help="CHECKOUT[,NAME=VALUE...]")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--ks", default="16,17,18,19,20", help="comma list of log2(n)")
    p.add_argument("--threads", default="1", help="comma list of thread counts")
    p.add_argument("--peer-bench", default=os.path.join("..", "shared", "tools", "peer_bench.py"))
    p.add_argument("--python", default=sys.executable,
                   help="interpreter with torch and the peers installed (default: this one)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    if len(set(args.variants)) < len(args.variants):
        p.error("a VARIANT is given twice; to compare a checkout with itself, add a dummy setting: . .,X=1")
    try:
        variants = [parse_variant(v) for v in args.variants]
    except ValueError as e:
        p.error(str(e))
    settings = dict(zip(args.variants, variants))
    with tempfile.TemporaryDirectory() as tmp:
        runs = timing.interleaved_rounds(
            args.variants, args.rounds,
            lambda spec: run_once(args, *settings[spec], os.path.join(tmp, "run.json")))
    print(summarize(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
