"""pytest-benchmark suite of zerofwht (not part of the normal test run: testpaths = ["tests"]).

    python -m pytest benchmarks/ --benchmark-only                       # fp32, 1 thread, N = 2^4..2^20
    python -m pytest benchmarks/ --benchmark-only --bench-dtypes all --bench-threads 1,2
    python -m pytest benchmarks/ --benchmark-only -k "cpp and float32 and N=2^10"

Options (each also read from an environment variable, ZEROFWHT_BENCH_<NAME>):
  --bench-ks       k range or list of N = 2^k: "4-20" (default) or "4,10,20"
  --bench-dtypes   float32 (default), a comma list, or "all"
  --bench-threads  CPU thread counts (torch.set_num_threads and the peers' thread argument), "1"
  --bench-device   cpu / cuda (default: cuda if available, else cpu)
  --bench-total    elements per call, batch = total // N (default as the CLI: 2^22 CPU, 2^26 CUDA)

At the end a summary table gives GB/s and the ratio to the copy of the same (dtype, threads, N).
``python -m zerofwht.bench`` is the fuller tool (thread counts in separate processes, JSON, plot).
"""
from __future__ import annotations

import os

try:
    import pytest_benchmark  # noqa: F401
except ImportError:  # without the plugin there is no `benchmark` fixture: collect nothing
    collect_ignore_glob = ["test_*.py"]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"ZEROFWHT_BENCH_{name.upper()}", default)


def pytest_addoption(parser):
    g = parser.getgroup("zerofwht benchmarks")
    g.addoption("--bench-ks", default=_env("ks", "4-20"), help="k range '4-20' or list '4,10,20' (N = 2^k)")
    g.addoption("--bench-dtypes", default=_env("dtypes", "float32"),
                help="comma list of float32, float16, bfloat16, float64, or 'all'")
    g.addoption("--bench-threads", default=_env("threads", "1"), help="CPU thread counts, e.g. 1,2")
    g.addoption("--bench-device", default=_env("device", ""), help="cpu or cuda (default: cuda if available)")
    g.addoption("--bench-total", default=_env("total", ""), help="elements per call (batch = total // N)")


def pytest_configure(config):
    config._zerofwht_bench_results = []


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    results = getattr(config, "_zerofwht_bench_results", [])
    if not results:
        return
    tr = terminalreporter
    tr.section("zerofwht: GB/s (2*batch*N*itemsize bytes / median time) and ratio to copy")
    copies = {(r["device"], r["dtype"], r["threads"], r["n"]): r["median_s"]
              for r in results if r["impl"] == "copy"}
    impls = list(dict.fromkeys(r["impl"] for r in results))
    panels = list(dict.fromkeys((r["device"], r["dtype"], r["threads"]) for r in results))
    cw = 16
    for dev, dt, th in panels:
        rows = [r for r in results if (r["device"], r["dtype"], r["threads"]) == (dev, dt, th)]
        here = [i for i in impls if any(r["impl"] == i for r in rows)]
        tr.write_line(f"{dev} {dt} threads={th}: cells 'GB/s (x copy)'")
        tr.write_line(f"{'N':>6} |" + "|".join(f"{i[:cw]:^{cw}}" for i in here))
        for n in sorted({r["n"] for r in rows}):
            cells = []
            for i in here:
                r = next((r for r in rows if r["n"] == n and r["impl"] == i), None)
                if r is None:
                    cells.append(" " * cw)
                    continue
                cp = copies.get((dev, dt, th, n))
                ratio = f" ({cp / r['median_s']:.2f})" if cp else ""
                cells.append(f"{r['gbps']:.1f}{ratio}".rjust(cw - 1) + " ")
            tr.write_line(f"{'2^%d' % (n.bit_length() - 1):>6} |" + "|".join(cells))
