"""scripts/peer_ab.py: alternating A/B runs of peer_bench (a stand-in peer_bench, known answers)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "peer_ab.py")
_spec = importlib.util.spec_from_file_location("peer_ab", SCRIPT)
peer_ab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer_ab)

OOP, INPLACE = "extra:zerofwht.fwht:none:torch:oop", "extra:zerofwht.fwht_:none:torch:inplace"


def rec(key, k, ns, threads=1, status="ok"):
    mode = "inplace" if key.endswith("inplace") else "oop"  # as peer_bench marks its records
    return dict(key=key, k=k, n=1 << k, threads=threads, dtype="float32", mode=mode, ns_per_elem=ns,
                status=status)


def cells_of(tmp_path, records, name="run.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"records": records}))
    return peer_ab.cells(str(path))


def test_parse_variant_splits_checkout_and_settings():
    assert peer_ab.parse_variant("/tmp/wt") == ("/tmp/wt", {})
    assert peer_ab.parse_variant(".,A=1,B=x=y") == (".", {"A": "1", "B": "x=y"})


@pytest.mark.parametrize("spec, words", [(",A=1", "checkout"), (".,A", "'A' is not NAME=VALUE"),
                                         (".,=1", "'=1' is not NAME=VALUE")])
def test_parse_variant_names_the_bad_part(spec, words):
    with pytest.raises(ValueError, match=words):
        peer_ab.parse_variant(spec)


def test_cells_take_the_fastest_in_place_peer_and_skip_failures(tmp_path):
    c = cells_of(tmp_path, [rec("fht_cpu_inplace", 8, 0.30), rec("ffht_inplace", 8, 0.25),
                            rec("ffht_oop", 8, 0.10),  # not in place: not a peer for the table
                            rec(OOP, 8, 0.20), rec(INPLACE, 8, 0.18), rec("copy_into", 8, 0.05),
                            rec(OOP, 9, None, status="error")])
    assert c == {(1, 8): {"peer": 0.25, "oop": 0.20, "inplace": 0.18}}


def test_summary_is_the_median_over_rounds_per_variant(tmp_path):
    def round_(oop, ip, peer):
        return cells_of(tmp_path, [rec(OOP, 10, oop), rec(INPLACE, 10, ip), rec("ffht_inplace", 10, peer)])
    runs = {"a": [round_(0.5, 0.4, 0.45), round_(0.7, 0.3, 0.47), round_(0.6, 0.35, 0.46)],
            "b": [round_(0.2, 0.1, 0.44), round_(0.9, 0.9, 0.48), round_(0.3, 0.2, 0.49)]}
    lines = peer_ab.summarize(runs).splitlines()
    assert lines[0] == "| variant | 1t 2^10 |"
    assert lines[2] == "| fastest peer (in place) | 0.465 |"  # median of all six rounds
    assert lines[3:] == ["| `a` out of place | 0.600 |", "| `a` in place | 0.350 |",
                         "| `b` out of place | 0.300 |", "| `b` in place | 0.200 |"]


FAKE_PEER_BENCH = textwrap.dedent("""
    # Stand-in for peer_bench.py: ours takes FAKE_NS ns per element; the checkout on PYTHONPATH and
    # the arguments are checked.
    import json, os, sys
    args = sys.argv[1:]
    assert os.path.isdir(os.environ["PYTHONPATH"]), os.environ["PYTHONPATH"]
    assert args[args.index("--ks") + 1] == "10" and args[args.index("--threads") + 1] == "2"
    assert "zerofwht:fwht_:none:torch:inplace" in args
    ns = float(os.environ.get("FAKE_NS", "0.5"))
    recs = [dict(key=k, k=10, n=1024, threads=2, dtype="float32", mode=m, ns_per_elem=v, status="ok")
            for k, m, v in [("%s", "oop", ns), ("%s", "inplace", ns / 2), ("fht_cpu_inplace", "inplace", 0.4)]]
    json.dump(dict(records=recs), open(args[args.index("--json") + 1], "w"))
""" % (OOP, INPLACE))


def test_each_variant_runs_with_its_own_settings(tmp_path):
    fake = tmp_path / "peer_bench.py"
    fake.write_text(FAKE_PEER_BENCH)
    out = subprocess.run([sys.executable, SCRIPT, "--rounds", "2", "--ks", "10", "--threads", "2",
                          "--peer-bench", str(fake), str(tmp_path), f"{tmp_path},FAKE_NS=0.25"],
                         capture_output=True, text=True, check=True)
    assert "round 2/2" in out.stderr
    table = out.stdout.splitlines()
    assert table[2] == "| fastest peer (in place) | 0.400 |"
    assert table[3] == f"| `{tmp_path}` out of place | 0.500 |"
    assert table[5] == f"| `{tmp_path},FAKE_NS=0.25` out of place | 0.250 |"
    assert table[6] == f"| `{tmp_path},FAKE_NS=0.25` in place | 0.125 |"


@pytest.mark.parametrize("argv, words", [(["--rounds", "0", "."], "--rounds must be at least 1, got 0"),
                                         ([".", "."], "a VARIANT is given twice"),
                                         ([".,A"], "'A' is not NAME=VALUE")])
def test_bad_arguments_exit_with_a_message(argv, words):
    out = subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True)
    assert out.returncode == 2 and words in out.stderr


def test_a_failing_peer_bench_run_stops_with_its_error(tmp_path):
    fake = tmp_path / "peer_bench.py"
    fake.write_text("import sys\nsys.exit('no peers here')\n")
    out = subprocess.run([sys.executable, SCRIPT, "--rounds", "1", "--peer-bench", str(fake), str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "peer_bench failed for" in out.stderr and "no peers here" in out.stderr
