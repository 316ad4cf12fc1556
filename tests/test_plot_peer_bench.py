"""scripts/plot_peer_bench.py: tables and plot from peer_bench JSON (synthetic runs, known answers)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "plot_peer_bench.py")


def record(key, k, threads, ns, mode="inplace"):
    return dict(key=key, k=k, n=1 << k, threads=threads, dtype="float32", status="ok", ns_per_elem=ns,
                mode=mode)


def write_run(path, ours, ours_inplace=None):
    recs = []
    for k in (6, 7):
        recs += [record("copy_into", k, 1, 0.2, mode="oop"),
                 record("fht_cpu_inplace", k, 1, 0.30),
                 record("ffht_inplace", k, 1, 0.40),
                 record("extra:zerofwht.fwht:none:torch:oop", k, 1, ours, mode="oop")]
        if ours_inplace is not None:
            recs.append(record("extra:zerofwht.fwht_:none:torch:inplace", k, 1, ours_inplace))
    path.write_text(json.dumps({"records": recs}))


def run(*args):
    out = subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, check=True)
    return out.stdout


def test_speed_ups_are_medians_over_runs_and_in_place_is_its_own_column(tmp_path):
    # fastest peer 0.30; ours out of place 0.25 / 0.20 / 0.60 -> median 0.25 -> 1.20x; in place 0.15 -> 2.00x
    paths = []
    for i, (oop, ip) in enumerate([(0.25, 0.15), (0.20, 0.15), (0.60, 0.15)]):
        p = tmp_path / f"run{i}.json"
        write_run(p, oop, ip)
        paths.append(p)
    png = tmp_path / "plot.png"
    text = run(*paths, "--png", png)
    assert "| zerofwht.fwht_ (in place) |" in text
    assert "| 2^6 | 0.200 | 0.250 | 0.150 | 0.300 | 0.400 | fht-cpu (in place) | 1.20x | 2.00x |" in text
    assert "| 1 | 1.20 (0.50–1.50) | 1.20 (0.50–1.50) |" in text
    assert "| 1, in place | 2.00 (2.00–2.00) | 2.00 (2.00–2.00) |" in text
    assert png.stat().st_size > 1000


def test_runs_without_in_place_keep_the_old_table(tmp_path):
    p = tmp_path / "run.json"
    write_run(p, 0.6)
    text = run(p)
    assert "zerofwht.fwht_" not in text and ", in place" not in text
    assert "| 2^7 | 0.200 | 0.600 | 0.300 | 0.400 | fht-cpu (in place) | 0.50x |" in text
    with pytest.raises(subprocess.CalledProcessError):
        run(tmp_path / "missing.json")
